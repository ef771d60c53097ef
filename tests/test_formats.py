"""List formats: every bad row named by file and line; property tests over random rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hashguard.banks.formats import (
    InvalidRow,
    ListFormat,
    detect_format,
    normalise_hash,
    parse_list,
)
from hashguard.domain.signals import Algorithm

MD5 = "d41d8cd98f00b204e9800998ecf8427e"
SHA1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709"
SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_with_aliases_and_extra_columns_as_metadata(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "list.csv",
        "Signal_Type,Signal,ID,Classification,source_ref\n"
        f"md5,{MD5.upper()},e1,A1,x-1\n"
        f"PDQ,{PDQ},e2,B,\n"
        f"sha-256,{SHA256},,,\n",
    )
    parsed = parse_list(path, detect_format(path))
    assert parsed.errors == []
    entries = list(parsed.entries.values())
    assert [e.algorithm for e in entries] == [Algorithm.MD5, Algorithm.PDQ, Algorithm.SHA256]
    assert entries[0].value == MD5
    assert (entries[0].entry_id, entries[0].category) == ("e1", "A1")
    assert entries[0].metadata == {"source_ref": "x-1"}
    assert entries[1].metadata == {}


def test_every_bad_row_is_named_with_file_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "bad.tsv",
        "algorithm\thash\tmetadata\n"
        f"md5\t{MD5}\t\n"
        f"md5\t{MD5[:-1]}\t\n"
        f"sha1\t{'z' * 40}\t\n"
        f"pdq\t{'0' * 64}\t\n"
        f"crc32\tdeadbeef\t\n"
        f"sha1\t{SHA1}\tnot json\n"
        f"sha1\t{SHA1}\t[1]\n",
    )
    parsed = parse_list(path, ListFormat.TSV)
    assert [(e.file, e.line) for e in parsed.errors] == [("bad.tsv", n) for n in range(3, 9)]
    reasons = [e.reason for e in parsed.errors]
    assert "31 hex digits, expected 32" in reasons[0]
    assert "not hexadecimal" in reasons[1]
    assert "all-zero PDQ" in reasons[2]
    assert "unknown algorithm 'crc32'" in reasons[3]
    assert "not valid JSON" in reasons[4]
    assert "must be a JSON object" in reasons[5]
    assert len(parsed.entries) == 1


def test_jsonl_and_plain(tmp_path: Path) -> None:
    jsonl = write(
        tmp_path,
        "list.jsonl",
        json.dumps({"algorithm": "pdq", "hash": PDQ, "entry_id": 7, "metadata": {"k": "v"}, "x": 1})
        + "\n\n[1,2]\n{broken\n"
        + json.dumps({"hash": MD5})
        + "\n",
    )
    parsed = parse_list(jsonl, ListFormat.JSONL)
    (first, second) = parsed.entries.values()
    assert (first.entry_id, first.metadata) == ("7", {"k": "v", "x": 1})
    assert second.algorithm is Algorithm.MD5  # inferred from its length
    assert [e.line for e in parsed.errors] == [3, 4]

    plain = write(tmp_path, "list.txt", f"# a comment\n{MD5}\n\n{SHA1}\n{SHA256}\n")
    parsed = parse_list(plain, ListFormat.PLAIN)
    assert len(parsed.entries) == 2
    assert [e.line for e in parsed.errors] == [5]
    assert "cannot infer the algorithm" in parsed.errors[0].reason
    with_algorithm = parse_list(plain, ListFormat.PLAIN, algorithm=Algorithm.SHA256)
    assert len(with_algorithm.errors) == 2  # now the md5 and sha1 have the wrong length


def test_threatexchange_signal_files_and_names(tmp_path: Path) -> None:
    # python-threatexchange's local-file exchange and `dataset -P --print-signals-only`
    # write "signal_type signal" lines; video_md5 is the MD5 of the file's bytes.
    path = write(
        tmp_path,
        "signals.txt",
        f"pdq {PDQ}\nvideo_md5\t{MD5.upper()}\n{SHA1}\n"
        f"url_md5 {MD5}\n{MD5} extra words\nsha256 {SHA256} more\n",
    )
    parsed = parse_list(path, ListFormat.PLAIN)
    assert set(parsed.entries) == {
        (Algorithm.PDQ, PDQ),
        (Algorithm.MD5, MD5),
        (Algorithm.SHA1, SHA1),
    }
    assert [(e.line, e.reason) for e in parsed.errors] == [
        (4, "unknown algorithm 'url_md5'"),  # the MD5 of a URL is not a file's
        (5, "text after the hash (a plain list has one hash a line)"),
        (6, "sha256 hash is not hexadecimal"),
    ]
    csv_export = write(tmp_path, "te.csv", f"signal_type,signal_str\nvideo_sha256,{SHA256}\n")
    (entry,) = parse_list(csv_export, ListFormat.CSV).entries.values()
    assert (entry.algorithm, entry.value) == (Algorithm.SHA256, SHA256)


def test_drop_unmapped_keeps_unknown_columns_out_of_metadata(tmp_path: Path) -> None:
    path = write(tmp_path, "l.csv", f'hash,category,note,metadata\n{MD5},A,x,"{{""k"": 1}}"\n')
    (kept,) = parse_list(path, ListFormat.CSV).entries.values()
    assert kept.metadata == {"note": "x", "k": 1}
    (dropped,) = parse_list(path, ListFormat.CSV, drop_unmapped=True).entries.values()
    assert (dropped.category, dropped.metadata) == ("A", {"k": 1})
    jsonl = write(tmp_path, "l.jsonl", json.dumps({"hash": MD5, "note": "x", "meta": {"k": 1}}))
    (dropped,) = parse_list(jsonl, ListFormat.JSONL, drop_unmapped=True).entries.values()
    assert dropped.metadata == {"k": 1}


def test_duplicates_keep_the_first_row(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", f"hash,id\n{MD5},a\n{MD5.upper()},b\n")
    parsed = parse_list(path, ListFormat.CSV)
    assert parsed.duplicates == 1
    assert [e.entry_id for e in parsed.entries.values()] == ["a"]


def test_csv_without_a_hash_column_is_one_clear_error(tmp_path: Path) -> None:
    path = write(tmp_path, "x.csv", f"{MD5}\n{MD5}\n")
    parsed = parse_list(path, ListFormat.CSV)
    assert len(parsed.errors) == 1
    assert "--format plain" in parsed.errors[0].reason


def test_undecodable_bytes_fail_their_own_line_only(tmp_path: Path) -> None:
    path = tmp_path / "bytes.txt"
    path.write_bytes(MD5.encode() + b"\n" + b"\xff\xfe" * 16 + b"\n" + SHA1.encode() + b"\n")
    parsed = parse_list(path, ListFormat.PLAIN)
    assert len(parsed.entries) == 2
    assert [e.line for e in parsed.errors] == [2]


def test_unknown_extension_needs_a_format() -> None:
    with pytest.raises(ValueError, match="--format"):
        detect_format(Path("list.dat"))


hex_digits = st.text(alphabet="0123456789abcdefABCDEF", min_size=1, max_size=70)
# a vPDQ list entry is a video (a set of frame hashes): not importable row by row yet
algorithms = st.sampled_from([a for a in Algorithm if a is not Algorithm.VPDQ])


@given(algorithm=algorithms, value=hex_digits)
def test_normalise_accepts_exactly_well_formed_hashes(algorithm: Algorithm, value: str) -> None:
    well_formed = len(value) == algorithm.hex_length and not (
        algorithm is Algorithm.PDQ and set(value) == {"0"}
    )
    try:
        assert normalise_hash(algorithm, f"  {value} ") == value.lower()
        assert well_formed
    except InvalidRow:
        assert not well_formed


def _valid_value(algorithm: Algorithm) -> st.SearchStrategy[str]:
    return st.text(
        alphabet="0123456789abcdef", min_size=algorithm.hex_length, max_size=algorithm.hex_length
    ).filter(lambda v: algorithm is not Algorithm.PDQ or set(v) != {"0"})


valid_rows = algorithms.flatmap(lambda a: st.tuples(st.just(str(a)), _valid_value(a)))
invalid_rows = st.one_of(
    st.tuples(st.sampled_from(["crc32", "md6", "phash"]), st.just(MD5)),
    st.tuples(st.just("md5"), st.text(alphabet="0123456789abcdef", min_size=0, max_size=31)),
    st.tuples(
        st.just("sha1"), st.text(alphabet="ghijklmnopqrstuvwxyzG-", min_size=40, max_size=40)
    ),
    st.tuples(st.just("pdq"), st.just("0" * 64)),
)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(st.booleans(), valid_rows, invalid_rows), max_size=40))
def test_random_rows_all_formats(
    tmp_path: Path, rows: list[tuple[bool, tuple[str, str], tuple[str, str]]]
) -> None:
    chosen = [valid if ok else invalid for ok, valid, invalid in rows]
    bad_lines = [i for i, (ok, _, _) in enumerate(rows) if not ok]
    expected = {(Algorithm(a), v) for (ok, (a, v), _) in rows if ok}
    layouts = {
        ListFormat.CSV: ("algorithm,hash\n", lambda a, v: f"{a},{v}\n", 2),
        ListFormat.TSV: ("algorithm\thash\n", lambda a, v: f"{a}\t{v}\n", 2),
        ListFormat.JSONL: ("", lambda a, v: json.dumps({"algorithm": a, "hash": v}) + "\n", 1),
    }
    for list_format, (header, line, first) in layouts.items():
        body = header + "".join(line(a, v) for a, v in chosen)
        path = write(tmp_path, f"random.{list_format}", body)
        parsed = parse_list(path, list_format)
        assert set(parsed.entries) == expected
        # An empty invalid hash in CSV is still a row; in every format each bad row is reported.
        assert [e.line for e in parsed.errors] == [first + i for i in bad_lines]
        assert parsed.rows == len(rows)
