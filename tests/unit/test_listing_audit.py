"""ListingAudit: the one rule every connector uses to tell a complete listing."""

from __future__ import annotations

from connectors.listing import SLACK_PAGES, ListingAudit


def _paged(pages: list[list[str | None]], total: int | None) -> ListingAudit:
    audit = ListingAudit("/clients", total_name="totalItems")
    for ids in pages:
        audit.page(len(ids), total=total)
        for record_id in ids:
            audit.member(record_id)
    return audit


def test_every_page_read_every_id_once_and_the_total_matching_is_complete() -> None:
    assert _paged([["1", "2"], ["3", "4"], ["5"]], total=5).verdict() is None
    assert _paged([["1", "2"], ["3"]], total=None).verdict() is None
    assert _paged([[]], total=0).verdict() is None


def test_members_without_an_id_are_named_with_their_page() -> None:
    audit = _paged([["1", "2"], ["3", None], [None, "", "6"]], total=7)
    assert audit.verdict() == (
        "page 2 of /clients had 1 member without an id; "
        "page 3 of /clients had 2 members without an id"
    )


def test_an_id_listed_twice_is_reported_once_per_page_and_only_the_first_counts() -> None:
    audit = ListingAudit("/client-contacts", total_name="totalItems")
    audit.page(2, total=4)
    assert [audit.member("7"), audit.member("8")] == [True, True]
    audit.page(2, total=4)
    assert [audit.member("7"), audit.member("8")] == [False, False]
    assert audit.verdict() == "page 2 of /client-contacts repeated 2 ids listed before (first '7')"


def test_a_count_other_than_the_stated_total_is_incomplete() -> None:
    assert _paged([["1", "2"], ["3"]], total=4).verdict() == (
        "/clients stated totalItems 4 but its pages held 3 members"
    )
    assert _paged([["1", "2"], ["3", "4"]], total=3).verdict() == (
        "/clients stated totalItems 3 but its pages held 4 members"
    )


def test_a_total_that_changes_between_pages_is_incomplete() -> None:
    audit = ListingAudit("/clients", total_name="totalItems")
    audit.page(2, total=10)
    audit.page(2, total=9)
    assert audit.verdict() == (
        "page 2 of /clients stated totalItems 9 where an earlier page stated 10 "
        "(the collection changed while it was read)"
    )


def test_a_page_that_is_no_collection_is_incomplete() -> None:
    audit = ListingAudit("/clients", total_name="totalItems")
    audit.page(2, total=4)
    audit.member("1")
    audit.member("2")
    audit.broken("answered {} instead of a collection")
    assert audit.pages == 2
    assert audit.verdict() == "page 2 of /clients answered {} instead of a collection"


def test_unpaged_sources_name_the_listing_and_where_the_row_is() -> None:
    audit = ListingAudit("contacts.csv", noun="row")
    audit.member("P1", "line 2")
    audit.member(None, "line 3")
    audit.member("P1", "line 4")
    audit.member(None, "line 5")
    assert audit.verdict() == (
        "contacts.csv had 2 rows without an id (first at line 3); "
        "contacts.csv repeated 1 id listed before (first 'P1' at line 4)"
    )


def test_overrun_allows_the_pages_of_the_total_plus_slack() -> None:
    audit = ListingAudit("/clients", total_name="totalItems")
    allowed = 2 + SLACK_PAGES  # 4 members, 2 a page
    for _ in range(allowed):
        audit.page(2, total=4)
        assert audit.overrun() is None
    audit.page(2, total=4)
    assert audit.overrun() == (
        f"/clients runs past {allowed} pages (totalItems 4, 2 members a page, "
        f"{SLACK_PAGES} pages of slack)"
    )


def test_overrun_without_a_total_or_after_an_empty_first_page() -> None:
    unbounded = ListingAudit("/clients")
    for _ in range(50):
        unbounded.page(2)
    assert unbounded.overrun() is None
    empty_first = ListingAudit("/clients")
    for _ in range(1 + SLACK_PAGES):
        empty_first.page(0, total=0)
    assert empty_first.overrun() is None
    empty_first.page(0, total=0)
    assert empty_first.overrun() is not None
