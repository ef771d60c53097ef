"""Column mappings: a partner's export read as it is, or one clear error and no import.

Parsing on its own, then real files through the importer on both engines, the CLI as
an operator runs it, and the API's ``columns`` parameter over loopback HTTP.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from hashguard.banks.columns import (
    FIELDS,
    ColumnMap,
    ColumnMappingError,
    Preset,
    column_map,
    parse_columns,
)
from hashguard.banks.formats import ListFormat, parse_list
from hashguard.banks.importer import EmptyList, ImportOptions, NewBank, import_list
from hashguard.domain.signals import Algorithm
from hashguard.domain.tokens import Scope
from hashguard.settings import Settings
from hashguard.store import Store
from tests.api_support import assert_problem, bearer, hex_variants, make_token
from tests.cli import hashguard
from tests.server import running_server

# Made-up values (MD5/SHA-1 of empty input, PDQ of nothing in particular).
MD5 = "d41d8cd98f00b204e9800998ecf8427e"
MD5_B = "0123456789abcdef0123456789abcdef"
SHA1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709"
SHA1_B = "0123456789abcdef0123456789abcdef01234567"
SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"

#: A partner export: a row per image, one column per hash (PhotoDNA we cannot use),
#: and a "Type" column that header-name detection would take for the algorithm.
PARTNER = (
    "Id,Type,MD5,SHA1,PDQHash,PhotoDNA,Category,Notes\n"
    f"img-1,image,{MD5.upper()},{SHA1},{PDQ},AAAA,A1,first seen 2023\n"
    f"img-2,image,,{SHA1_B},,BBBB,B,\n"
    f"img-3,image,{MD5_B},,,,A2,\n"
)
PARTNER_COLUMNS = "entry_id=Id,md5=MD5,sha1=SHA1,pdq=PDQHash,category=Category"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def signals(entries: object) -> set[tuple[Algorithm, str]]:
    assert isinstance(entries, dict)
    return set(entries)


# -- the mapping on its own ----------------------------------------------------------


def test_parse_columns_fields_hashes_and_quoting() -> None:
    mapping = parse_columns('hash = MD5Hash, Algorithm=HashType,"category=Class, main"')
    assert mapping == ColumnMap(
        fields=(("hash", "MD5Hash"), ("algorithm", "HashType"), ("category", "Class, main"))
    )
    multi = parse_columns("md5=MD5,sha1=SHA1,pdq=PDQHash,entry_id=Id")
    assert multi.hashes == (
        (Algorithm.MD5, "MD5"),
        (Algorithm.SHA1, "SHA1"),
        (Algorithm.PDQ, "PDQHash"),
    )
    assert multi.fields == (("entry_id", "Id"),)
    positional = parse_columns("hash=1,category=3", header=False)
    assert (positional.fields, positional.header) == ((("hash", 0), ("category", 2)), False)


@pytest.mark.parametrize(
    ("text", "header", "message"),
    [
        ("hash=A,sha512=B", True, "unknown field 'sha512'"),
        ("hash=A,hash=B", True, "hash is mapped twice"),
        ("hash=A,category=A", True, "column 'A' is mapped to both hash and category"),
        ("hash=A,md5=B", True, "not both"),
        ("algorithm=A,md5=B", True, "not both"),
        ("category=A", True, "no hash column"),
        ("", True, "no hash column"),
        ("hash", True, "is not field=COLUMN"),
        ("hash=", True, "is not field=COLUMN"),
        ("hash=A,,category=B", True, "is not field=COLUMN"),
        ("hash=A\x00", True, "control characters"),
        ("hash=MD5", False, "1-based positions, not 'MD5'"),
        ("hash=0", False, "positions start at 1"),
        ("hash=-1", False, "1-based positions"),
        ("hash=1,md5=1", False, "column 1 is mapped to both"),
    ],
)
def test_parse_columns_refuses_with_a_reason(text: str, header: bool, message: str) -> None:
    with pytest.raises(ColumnMappingError, match=message):
        parse_columns(text, header=header)


def test_column_map_presets_and_header_options() -> None:
    assert column_map() is None
    preset = column_map(preset=Preset.THREATEXCHANGE_CSV)
    assert preset is not None
    assert dict(preset.fields) == {
        "algorithm": "signal_type",
        "hash": "signal_str",
        "category": "category",
    }
    with pytest.raises(ColumnMappingError, match="not both"):
        column_map("hash=a", preset=Preset.THREATEXCHANGE_CSV)
    with pytest.raises(ColumnMappingError, match="by position"):
        column_map(header=False)
    with pytest.raises(ColumnMappingError, match="needs one"):
        column_map(preset=Preset.THREATEXCHANGE_CSV, header=False)


def test_mapping_fields_are_the_detected_fields() -> None:
    assert FIELDS == ("algorithm", "hash", "entry_id", "category", "metadata")
    mapping = parse_columns(",".join(f"{name}=c{i}" for i, name in enumerate(FIELDS)))
    assert [target for target, _ in mapping.fields] == list(FIELDS)


# -- reading files with a mapping ----------------------------------------------------


def test_a_mapping_replaces_header_detection(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "export.csv",
        "Id,Type,HashType,Hash,Category,id\n"
        f"x-1,image,MD5,{MD5},A1,other\n"
        f"x-2,video,SHA1,{SHA1},B,\n",
    )
    # Detection alone takes "Type" for the algorithm: every row is refused.
    detected = parse_list(path, ListFormat.CSV)
    assert [e.reason for e in detected.errors] == [
        "unknown algorithm 'image'",
        "unknown algorithm 'video'",
    ]
    mapping = parse_columns("hash=Hash,algorithm=HashType,entry_id=Id,category=Category")
    parsed = parse_list(path, ListFormat.CSV, columns=mapping)
    assert parsed.errors == []
    first, second = parsed.entries.values()
    assert (first.algorithm, first.value, first.entry_id, first.category) == (
        Algorithm.MD5,
        MD5,
        "x-1",
        "A1",
    )
    # unmapped columns stay metadata, under their header names ("id" is not "Id")
    assert first.metadata == {"Type": "image", "id": "other"}
    assert second.metadata == {"Type": "video"}
    dropped = parse_list(path, ListFormat.CSV, columns=mapping, drop_unmapped=True)
    assert [e.metadata for e in dropped.entries.values()] == [{}, {}]


def test_names_match_ignoring_case_when_no_exact_name_does(tmp_path: Path) -> None:
    path = write(tmp_path, "case.tsv", f"MD5HASH\tcategory\n{MD5}\tA\n")
    parsed = parse_list(
        path, ListFormat.TSV, columns=parse_columns("hash=md5hash,category=Category")
    )
    assert [(e.value, e.category) for e in parsed.entries.values()] == [(MD5, "A")]


def test_a_row_with_several_hashes_gives_an_entry_each(tmp_path: Path) -> None:
    path = write(tmp_path, "partner.csv", PARTNER)
    parsed = parse_list(path, ListFormat.CSV, columns=parse_columns(PARTNER_COLUMNS))
    assert parsed.errors == []
    assert parsed.rows == 3
    assert signals(parsed.entries) == {
        (Algorithm.MD5, MD5),
        (Algorithm.SHA1, SHA1),
        (Algorithm.PDQ, PDQ),
        (Algorithm.SHA1, SHA1_B),
        (Algorithm.MD5, MD5_B),
    }
    for key in [(Algorithm.MD5, MD5), (Algorithm.SHA1, SHA1), (Algorithm.PDQ, PDQ)]:
        entry = parsed.entries[key]
        assert (entry.entry_id, entry.category) == ("img-1", "A1")
        assert entry.metadata == {"Type": "image", "PhotoDNA": "AAAA", "Notes": "first seen 2023"}
    assert parsed.entries[(Algorithm.MD5, MD5_B)].metadata == {"Type": "image"}


def test_bad_cells_are_named_and_the_whole_row_is_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "bad.csv",
        "Id,MD5,SHA1,PDQHash\n"
        f"ok,{MD5},{SHA1},\n"
        f"short,{MD5_B},{SHA1_B[:-1]},\n"
        "none,,,\n"
        f"two,zz,{SHA1_B},{'0' * 64}\n"
        f"again,{MD5},,\n",
    )
    parsed = parse_list(
        path, ListFormat.CSV, columns=parse_columns("entry_id=Id,md5=MD5,sha1=SHA1,pdq=PDQHash")
    )
    assert [(e.file, e.line) for e in parsed.errors] == [
        ("bad.csv", 3),
        ("bad.csv", 4),
        ("bad.csv", 5),
    ]
    short, none, two = (e.reason for e in parsed.errors)
    assert short == "column 'SHA1': sha1 hash has 39 hex digits, expected 40"
    assert none == "no hash in column 'MD5', column 'SHA1', column 'PDQHash'"
    assert "column 'MD5': md5 hash is not hexadecimal" in two
    assert "column 'PDQHash': all-zero PDQ" in two
    # nothing of a refused row is kept, not even its valid MD5
    assert signals(parsed.entries) == {(Algorithm.MD5, MD5), (Algorithm.SHA1, SHA1)}
    assert (parsed.rows, parsed.duplicates) == (5, 1)


def test_headerless_files_are_mapped_by_position(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "positions.csv",
        f"{MD5},x,A1,note\n\n{SHA1},y,B\n{MD5_B}\n",
    )
    mapping = parse_columns("hash=1,category=3", header=False)
    parsed = parse_list(path, ListFormat.CSV, columns=mapping)
    assert parsed.errors == []
    first, second, third = parsed.entries.values()
    assert (first.category, first.metadata) == ("A1", {"column_2": "x", "column_4": "note"})
    assert (second.algorithm, second.metadata) == (Algorithm.SHA1, {"column_2": "y"})
    assert (third.category, third.metadata) == (None, {})
    dropped = parse_list(path, ListFormat.CSV, columns=mapping, drop_unmapped=True)
    assert all(e.metadata == {} for e in dropped.entries.values())

    tsv = write(tmp_path, "positions.tsv", f"A1\t{MD5}\t{SHA1}\n")
    multi = parse_list(
        tsv, ListFormat.TSV, columns=parse_columns("category=1,md5=2,sha1=3", header=False)
    )
    assert signals(multi.entries) == {(Algorithm.MD5, MD5), (Algorithm.SHA1, SHA1)}

    beyond = parse_columns("hash=1,category=7", header=False)
    with pytest.raises(
        ColumnMappingError, match=r"positions.csv: no row has a column 7 \(the widest has 4\)"
    ):
        parse_list(path, ListFormat.CSV, columns=beyond)


def test_a_mapping_that_does_not_fit_the_file_is_one_error(tmp_path: Path) -> None:
    path = write(tmp_path, "partner.csv", PARTNER)
    with pytest.raises(ColumnMappingError) as caught:
        parse_list(path, ListFormat.CSV, columns=parse_columns("md5=MD5,sha1=SHA-1"))
    message = str(caught.value)
    assert message.startswith("partner.csv: the header has no column 'SHA-1' (mapped to sha1)")
    assert "'SHA1'" in message  # the header's columns are listed

    twice = write(tmp_path, "twice.csv", f"Hash,hash\n{MD5},{MD5_B}\n")
    with pytest.raises(ColumnMappingError, match="2 columns named 'HASH'"):
        parse_list(twice, ListFormat.CSV, columns=parse_columns("hash=HASH"))
    same = write(tmp_path, "same.csv", f"MD5\n{MD5}\n")
    with pytest.raises(ColumnMappingError, match="same column"):
        parse_list(same, ListFormat.CSV, columns=parse_columns("md5=MD5,entry_id=md5"))

    # a headerless file read with a header: its first hash is not echoed in the error
    bare = write(tmp_path, "bare.csv", f"{MD5},A1\n")
    with pytest.raises(ColumnMappingError) as caught:
        parse_list(bare, ListFormat.CSV, columns=parse_columns("hash=1"))
    assert MD5 not in str(caught.value)
    assert "without a header" in str(caught.value)


def test_mappings_that_cannot_apply_to_the_format(tmp_path: Path) -> None:
    plain = write(tmp_path, "l.txt", f"{MD5}\n")
    with pytest.raises(ColumnMappingError, match="plain list"):
        parse_list(plain, ListFormat.PLAIN, columns=parse_columns("hash=a"))
    jsonl = write(tmp_path, "l.jsonl", "{}\n")
    with pytest.raises(ColumnMappingError, match="by key"):
        parse_list(jsonl, ListFormat.JSONL, columns=parse_columns("hash=1", header=False))
    csv_file = write(tmp_path, "l.csv", f"MD5\n{MD5}\n")
    with pytest.raises(ColumnMappingError, match="default algorithm"):
        parse_list(
            csv_file, ListFormat.CSV, columns=parse_columns("md5=MD5"), algorithm=Algorithm.MD5
        )


def test_json_lines_are_mapped_by_key(tmp_path: Path) -> None:
    # HMA's bank signal objects are keyed by signal type: {"pdq": ..., "video_md5": ...}
    path = write(
        tmp_path,
        "signals.jsonl",
        json.dumps({"pdq": PDQ, "video_md5": MD5, "ref": 7, "meta": {"k": "v"}})
        + "\n"
        + json.dumps({"VIDEO_MD5": MD5_B, "pdq": None})
        + "\n"
        + json.dumps({"pdq": 12})
        + "\n\n"
        + json.dumps({"ref": 8})
        + "\n",
    )
    mapping = parse_columns("pdq=pdq,md5=video_md5,entry_id=ref,metadata=meta")
    parsed = parse_list(path, ListFormat.JSONL, columns=mapping)
    assert signals(parsed.entries) == {
        (Algorithm.PDQ, PDQ),
        (Algorithm.MD5, MD5),
        (Algorithm.MD5, MD5_B),
    }
    entry = parsed.entries[(Algorithm.PDQ, PDQ)]
    assert (entry.entry_id, entry.metadata) == ("7", {"k": "v"})
    assert [(e.line, e.reason) for e in parsed.errors] == [
        (3, "key 'pdq': a hash must be a string"),
        (5, "no hash in key 'pdq', key 'video_md5'"),
    ]

    single = write(
        tmp_path,
        "single.jsonl",
        json.dumps({"Kind": "SHA1", "Value": SHA1, "extra": [1]}) + "\n",
    )
    parsed = parse_list(
        single, ListFormat.JSONL, columns=parse_columns("hash=Value,algorithm=Kind")
    )
    (only,) = parsed.entries.values()
    assert (only.algorithm, only.metadata) == (Algorithm.SHA1, {"extra": [1]})

    with pytest.raises(ColumnMappingError, match="no line has the key 'Category'"):
        parse_list(single, ListFormat.JSONL, columns=parse_columns("hash=Value,category=Category"))


def test_values_no_store_can_keep_are_refused_on_their_line(tmp_path: Path) -> None:
    path = write(tmp_path, "nul.csv", f"MD5,Class,Note\n{MD5},A\x00,\n{MD5_B},B,x\x00y\n")
    parsed = parse_list(path, ListFormat.CSV, columns=parse_columns("md5=MD5,category=Class"))
    assert [(e.line, e.reason) for e in parsed.errors] == [
        (2, "category contains a NUL character"),
        (3, "metadata contains a NUL character"),
    ]
    jsonl = write(tmp_path, "nan.jsonl", '{"h": "' + MD5 + '", "m": {"x": NaN}}\n')
    parsed = parse_list(jsonl, ListFormat.JSONL, columns=parse_columns("hash=h,metadata=m"))
    assert "non-finite number" in parsed.errors[0].reason


def test_swapped_columns_do_not_echo_a_hash(tmp_path: Path) -> None:
    path = write(tmp_path, "swapped.csv", f"{MD5},md5\n")
    swapped = parse_columns("hash=2,algorithm=1", header=False)
    (error,) = parse_list(path, ListFormat.CSV, columns=swapped).errors
    assert error.reason == "unknown algorithm (a hex value)"


def test_the_threatexchange_preset_reads_its_csv_export(tmp_path: Path) -> None:
    # `threatexchange dataset -P --csv`: signal_type,signal_str,collab,category,tags
    path = write(
        tmp_path,
        "collab.csv",
        "signal_type,signal_str,collab,category,tags\n"
        f"pdq,{PDQ},Sample Collab,POSITIVE_CLASS,tag_a tag_b\n"
        f"video_md5,{MD5},Sample Collab,POSITIVE_CLASS,\n",
    )
    mapping = column_map(preset=Preset.THREATEXCHANGE_CSV)
    for columns in (mapping, None):  # its header names are also recognised without it
        parsed = parse_list(path, ListFormat.CSV, columns=columns)
        assert parsed.errors == []
        pdq, md5 = parsed.entries.values()
        assert (pdq.algorithm, pdq.category) == (Algorithm.PDQ, "POSITIVE_CLASS")
        assert pdq.metadata == {"collab": "Sample Collab", "tags": "tag_a tag_b"}
        assert md5.algorithm is Algorithm.MD5


# -- importing: all or nothing, on both engines ---------------------------------------


def test_import_with_a_mapping(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "partner.csv", PARTNER)
    options = ImportOptions(create=NewBank(), columns=parse_columns(PARTNER_COLUMNS))
    report = import_list(store.banks, "partner", path, options=options)
    assert (report.applied, report.rows, report.added) == (True, 3, 5)
    stats = store.banks.stats("partner")
    assert dict(stats.active) == {Algorithm.MD5: 2, Algorithm.SHA1: 2, Algorithm.PDQ: 1}

    # a mapping that does not fit: an error, the bank untouched, whatever the options
    for forgiving in (
        ImportOptions(columns=parse_columns("md5=Nope")),
        ImportOptions(columns=parse_columns("md5=Nope"), skip_invalid=True, allow_empty=True),
    ):
        with pytest.raises(ColumnMappingError, match=r"partner\.csv: the header has no column"):
            import_list(store.banks, "partner", path, options=forgiving)
    with pytest.raises(ColumnMappingError):
        import_list(
            store.banks,
            "never",
            path,
            options=ImportOptions(create=NewBank(), columns=parse_columns("md5=Nope")),
        )
    assert store.banks.find("never") is None
    assert store.banks.stats("partner").imports == 1
    assert store.banks.stats("partner").total_active == 5

    # one bad cell: nothing imported; skipped, the rest of the file is the new version
    bad = write(tmp_path, "bad.csv", PARTNER + f"img-4,image,{MD5_B[:-2]},,,,A1,\n")
    refused = import_list(store.banks, "partner", bad, options=options)
    assert (refused.applied, [e.line for e in refused.errors]) == (False, [5])
    assert store.banks.stats("partner").imports == 1
    skipped = import_list(
        store.banks,
        "partner",
        bad,
        options=ImportOptions(columns=parse_columns(PARTNER_COLUMNS), skip_invalid=True),
    )
    assert (skipped.applied, skipped.unchanged, skipped.removed) == (True, 5, 0)

    # a headerless file whose every row lacks a usable hash would empty the bank
    empty = write(tmp_path, "empty.csv", "x,A1\n")
    with pytest.raises(EmptyList):
        import_list(
            store.banks,
            "partner",
            empty,
            options=ImportOptions(
                columns=parse_columns("category=2,md5=1", header=False), skip_invalid=True
            ),
        )
    assert store.banks.stats("partner").total_active == 5


# -- the command -----------------------------------------------------------------------


@pytest.mark.usefixtures("home")
def test_the_import_command_takes_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "partner.csv", PARTNER)
    imported = hashguard("banks", "import", "partner", str(path), "--columns", PARTNER_COLUMNS)
    assert "3 rows, 5 added" in imported.stderr
    refused = hashguard(
        "banks", "import", "partner", str(path), "--columns", "md5=MD5,sha1=SHA-1", check=2
    )
    assert "partner.csv: the header has no column 'SHA-1'" in refused.stderr
    bare = write(tmp_path, "bare.csv", f"{MD5},[/bold]\n")
    positional = hashguard(
        "banks",
        "import",
        "bare",
        str(bare),
        "--no-header",
        "--columns",
        "hash=1,category=2",
        "--drop-unmapped",
    )
    assert "1 rows, 1 added" in positional.stderr
    hashguard("banks", "import", "bare", str(bare), "--no-header", check=2)
    wrong = hashguard("banks", "import", "bare", str(bare), "--columns", "hash=1", check=2)
    assert MD5 not in wrong.stdout + wrong.stderr
    shown = json.loads(hashguard("banks", "show", "partner", "--json").stdout)
    assert (shown["entries"], shown["imports"]) == ({"md5": 2, "pdq": 1, "sha1": 2}, 1)


# -- the API ---------------------------------------------------------------------------


def test_the_import_route_takes_a_mapping(api_settings: Settings) -> None:
    writer = bearer(make_token(api_settings, Scope.BANKS_READ, Scope.BANKS_WRITE))
    csv_body = {"Content-Type": "text/csv"}
    with running_server(api_settings) as base, httpx.Client(base_url=base, headers=writer) as http:
        answers: list[httpx.Response] = []

        def post(**params: str) -> httpx.Response:
            answer = http.post(
                "/v1/banks/partner/import",
                params={"format": "csv", "create": "true", **params},
                files={"file": ("partner.csv", PARTNER.encode())},
            )
            answers.append(answer)
            return answer

        created = post(columns=PARTNER_COLUMNS)
        assert created.status_code == 200, created.text
        assert (created.json()["applied"], created.json()["added"]) == (True, 5)
        shown = http.get("/v1/banks/partner").json()
        assert shown["entries"] == {"md5": 2, "pdq": 1, "sha1": 2}

        for params, detail in [
            ({"columns": "md5=MD5,sha1=SHA-1"}, ".csv: the header has no column 'SHA-1'"),
            ({"columns": "md5=MD5,hash=SHA1"}, "not both"),
            ({"columns": "md5=MD5", "no_header": "true"}, "1-based positions"),
            ({"no_header": "true"}, "by position"),
            ({"columns": PARTNER_COLUMNS, "algorithm": "md5"}, "default algorithm"),
            ({"columns": PARTNER_COLUMNS, "preset": "threatexchange-csv"}, "not both"),
        ]:
            report = post(**params).json()
            assert report["applied"] is False, (params, report)
            (error,) = report["errors"]
            assert error["line"] == 0
            assert detail in error["reason"], (params, report)
        for params in [
            {"columns": "md5=MD5\nsha1=SHA1"},  # a control character
            {"columns": "no pairs"},
            {"columns": "hash=" + "x" * 2000},
            {"preset": "ncmec"},
        ]:
            assert_problem(post(**params), 422)

        bare = f"{MD5_B},A1,made-up\n{SHA1_B},B,\n"
        positional = http.post(
            "/v1/banks/partner/import",
            params={
                "format": "csv",
                "columns": "hash=1,category=2",
                "no_header": "true",
                "drop_unmapped": "true",
            },
            content=bare,
            headers=csv_body,
        )
        answers.append(positional)
        report = positional.json()
        # the two hashes it keeps have a new category and no metadata: updated
        assert (report["applied"], report["updated"], report["removed"]) == (True, 2, 3)
        shown = http.get("/v1/banks/partner").json()
        assert (shown["entries"], shown["imports"]) == ({"md5": 1, "sha1": 1}, 2)

        # the same file read with a header: the error does not echo its first hash
        echoed = http.post(
            "/v1/banks/partner/import",
            params={"format": "csv", "columns": "hash=1"},
            content=bare,
            headers=csv_body,
        )
        answers.append(echoed)
        assert echoed.json()["applied"] is False
    leaked = hex_variants([MD5, MD5_B, SHA1, SHA1_B, PDQ])
    for answer in answers:
        assert not any(value in answer.text for value in leaked), answer.text
