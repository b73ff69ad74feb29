"""Table names in their three notations, and the archive listing pg_restore prints."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.core.archive import data_list, read_toc
from bot.core.names import dump_pattern, qualified, quote_ident, split_qualified

# Captured from `pg_restore --list` (PostgreSQL 15) of a database with odd names.
LISTING = """\
;
; Archive created at 2025-11-24 20:29:10 UTC
;     dbname: exp1
;
; Selected TOC Entries:
;
6; 2615 16459 SCHEMA - my schema root
847; 1247 16435 TYPE public mood root
221; 1259 16460 TABLE my schema x y root
216; 1259 16444 TABLE public Weird Name root
217; 1259 16447 TABLE public a*b root
223; 1259 16466 TABLE public parted root
224; 1259 16469 TABLE public parted_1 root
215; 1259 16439 TABLE public users root
222; 1259 16463 TABLE public we"ird root
226; 1259 16480 VIEW public user_view root
3236; 0 0 TABLE ATTACH public parted_1 root
3387; 0 16460 TABLE DATA my schema x y root
3382; 0 16444 TABLE DATA public Weird Name root
3389; 0 16469 TABLE DATA public parted_1 root
3381; 0 16439 TABLE DATA public users root
3388; 0 16463 TABLE DATA public we"ird root
3238; 2606 16443 CONSTRAINT public users users_pkey root
"""


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("public.users", ("public", "users")),
        ("Public.Users", ("public", "users")),
        ('"public"."Weird Name"', ("public", "Weird Name")),
        ('public."a.b"', ("public", "a.b")),
        ('"my schema"."we""ird"', ("my schema", 'we"ird')),
        ("  public.users  ", ("public", "users")),
    ],
)
def test_split_qualified_reads_names_as_sql_does(text: str, name: tuple[str, str]) -> None:
    """Unquoted parts fold to lower case, quoted parts are taken verbatim."""
    assert split_qualified(text) == name


@pytest.mark.parametrize(
    "text", ["users", "a.b.c", '"unterminated.x', '"".x', "a..b", "a b.c", "public."]
)
def test_split_qualified_rejects_what_is_not_schema_dot_table(text: str) -> None:
    """Unqualified, over-qualified or malformed names are refused rather than guessed."""
    with pytest.raises(ValueError, match="schema-qualified"):
        split_qualified(text)


@pytest.mark.parametrize(
    ("name", "quoted"),
    [
        ("users", "users"),
        ("Users", '"Users"'),
        ("weird name", '"weird name"'),
        ('we"ird', '"we""ird"'),
        ("select", '"select"'),
        ("user", '"user"'),
        ("name", "name"),
        ("_x$1", "_x$1"),
        ("1abc", '"1abc"'),
    ],
)
def test_quote_ident_quotes_only_when_needed(name: str, quoted: str) -> None:
    """Plain names and unreserved keywords stay bare; everything else is quoted."""
    assert quote_ident(name) == quoted


@given(st.text(min_size=1).filter(lambda s: "\0" not in s), st.text(min_size=1))
def test_qualified_round_trips(schema: str, name: str) -> None:
    """Whatever the names hold, the text form reads back as the same pair."""
    assert split_qualified(qualified((schema, name))) == (schema, name)


def test_dump_pattern_quotes_every_part() -> None:
    """Each part is quoted so pg_dump neither folds case nor treats * ? . as wildcards."""
    assert dump_pattern("public", "a*b.c?") == '"public"."a*b.c?"'
    assert dump_pattern('we"ird') == '"we""ird"'


def test_read_toc_lists_tables_and_their_data() -> None:
    """TABLE and TABLE DATA entries are told apart; views, attaches and constraints are not."""
    contents = read_toc(LISTING)
    assert ("public", "users") in contents.tables
    assert ("public", "a*b") in contents.tables
    assert ("public", "a*b") not in contents.table_data
    assert ("public", "parted") in contents.tables
    assert ("public", "parted") not in contents.table_data
    assert ("public", "user_view") not in contents.tables
    assert contents.table_data == {
        ("my schema", "x y"),
        ("public", "Weird Name"),
        ("public", "parted_1"),
        ("public", "users"),
        ("public", 'we"ird'),
    }


def test_read_toc_prefers_expected_names_when_the_split_is_ambiguous() -> None:
    """A listed `a b c root` is the expected table a."b c" only if it is expected."""
    listing = "5; 1259 1 TABLE a b c root\n6; 0 1 TABLE DATA a b c root\n"
    assert read_toc(listing).table_data == {("a", "b c")}
    assert read_toc(listing, [("a b", "c")]).table_data == {("a b", "c")}


def test_read_toc_does_not_stretch_an_expected_name_over_a_longer_one() -> None:
    """Expecting public.b does not count the data of public."b c" as b's."""
    listing = "6; 0 1 TABLE DATA public b c root\n"
    assert read_toc(listing, [("public", "b")]).table_data == {("public", "b c")}


def test_data_list_keeps_the_rows_of_the_given_tables_in_the_given_order() -> None:
    """Only the named tables' TABLE DATA lines, parents first as asked, then sequence values."""
    listing = LISTING + "3390; 0 0 SEQUENCE SET public users_id_seq root\n"
    assert data_list(listing, [("public", "users"), ("my schema", "x y"), ("public", "gone")]) == (
        "3381; 0 16439 TABLE DATA public users root\n"
        "3387; 0 16460 TABLE DATA my schema x y root\n"
        "3390; 0 0 SEQUENCE SET public users_id_seq root\n"
    )


def test_data_list_does_not_take_a_longer_name_for_a_shorter_one() -> None:
    """Asking for public.b does not restore the rows of public."b c"."""
    assert data_list("6; 0 1 TABLE DATA public b c root\n", [("public", "b")]) == ""
