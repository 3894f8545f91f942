"""Loaders on small files written here, broken ones included: each gives a clear error or a counted skip."""

import csv
import gzip
import json
from dataclasses import replace

import pytest

from app.text import TextSettings
from model_build.data import GIVEN_AGAIN, load, load_replab, load_table, parse_related
from model_build.errors import BuildError
from model_build.splits import UNSEEN_ENTITIES, Holdout, SplitSpec, split_by_time
from tests.conftest import FIXTURES

ENTITIES = ('"entity_id"\t"query"\t"entity_name"\t"category"\n"E1"\t"""Bank of America"""\t"BoA"\t"banking"\n'
            '"E2"\t"BMW"\t"BMW AG"\t"automotive"\n')
INFO_HEADER = ('"tweet_id"\t"author"\t"entity_id"\t"tweet_url"\t"language"\t"timestamp"\t"urls"\t"extended_urls"\t'
               '"md5_extended_urls"\t"is_near_duplicate_of"\n')

UNKNOWN_LABEL = "unknown label (not one of positive, neutral, negative)"
UNKNOWN_RELATED = "unknown related value (not one of 0, 1, false, no, related, true, unrelated, yes)"


def info_row(tid, entity, lang="EN", ts=1000, dup="-1"):
    return f'"{tid}"\t"a"\t"{entity}"\t"u"\t"{lang}"\t"{ts}"\t""\t""\t""\t"{dup}"\n'


def write_odd_replab(root, info_bytes=None):
    """A RepLab 2013 tree of odd cases for the loader: a byte-order mark, a broken row, a duplicate, a Spanish tweet,
    an empty text, unknown gold values, a gold row without its tweet (test_curve's ``write_replab`` writes one to train
    on)."""
    (root / "training" / "tweet_info").mkdir(parents=True)
    (root / "training" / "texts").mkdir()
    (root / "training" / "goldstandard").mkdir()
    (root / "replab2013_entities.tsv").write_text(ENTITIES)
    (root / "training" / "tweet_info" / "E1.dat").write_bytes(info_bytes or (
        INFO_HEADER + info_row(1, "E1", ts=30) + info_row(2, "E1", ts=10) + info_row(3, "E1", "ES")
        + info_row(4, "E1", ts=20, dup="1") + info_row(5, "E1") + info_row(6, "E1") + info_row(7, "E1", ts=40)).encode())
    (root / "training" / "tweet_info" / "E2.dat").write_text(INFO_HEADER + info_row(1, "E2", ts=5))
    (root / "training" / "texts" / "E1.tsv").write_text(
        '\ufeff"tweet_id"\t"author"\t"entity_id"\t"text"\n'
        '"1"\t"a"\t"E1"\t"Great ""service"" today"\n"2"\t"a"\t"E1"\t"fees again"\n"3"\t"a"\t"E1"\t"hola"\n'
        '"4"\t"a"\t"E1"\t"Great service"\n"5"\t"a"\t"E1"\t""\n"6"\t"a"\t"E1"\t"x"\n"bad row"\n'
        '"7"\t"a"\t"E1"\t"apple pie"\n', encoding="utf-8")
    (root / "training" / "texts" / "E2.tsv").write_text(
        '"tweet_id"\t"author"\t"entity_id"\t"text"\n"1"\t"b"\t"E2"\t"BMW recalls cars"\n')
    (root / "training" / "goldstandard" / "goldstandard_polarity.dat").write_text(
        '"entity_id"\t"tweet_id"\t"polarity"\n"E1"\t"1"\t"POSITIVE"\n"E1"\t"2"\t"NEGATIVE"\n"E1"\t"3"\t"NEUTRAL"\n'
        '"E1"\t"4"\t"POSITIVE"\n"E1"\t"5"\t"NEUTRAL"\n"E1"\t"6"\t"RELATED"\n"E1"\t"1"\t"POSITIVE"\n'
        '"E2"\t"1"\t"NEGATIVE"\n"E1"\t"99"\t"NEUTRAL"\n')
    (root / "training" / "goldstandard" / "goldstandard_filtering.dat").write_text(
        '"entity_id"\t"tweet_id"\t"filtering"\n' + "".join(f'"E1"\t"{i}"\t"RELATED"\n' for i in range(1, 7))
        + '"E1"\t"7"\t"UNRELATED"\n"E2"\t"1"\t"RELATED"\n"E2"\t"2"\t"MAYBE"\n')


def test_replab_join_filters_and_counts(tmp_path):
    write_odd_replab(tmp_path)
    examples, report = load_replab(tmp_path)
    assert [(e.entity_id, e.tweet_id) for e in examples] == [("E1", "1"), ("E1", "2"), ("E1", "4"), ("E2", "1")]
    assert examples[0].text == 'Great "service" today' and examples[0].entity == "Bank of America"
    assert examples[3].entity == "BMW" and examples[3].category == "automotive" and examples[3].timestamp == 5
    assert examples[0].entity_name == "BoA" and examples[3].entity_name == "BMW AG"
    assert report.dropped == {"language not EN": 1, "empty or missing text": 1, UNKNOWN_LABEL: 1,
                              "duplicate (entity_id, tweet_id)": 1, "no tweet_info row": 1, "malformed row": 1,
                              "unknown filtering label (not RELATED or UNRELATED)": 1}
    assert report.near_duplicates == 1 and report.kept == 4 and all(e.related for e in examples)
    assert any("dropped 1 rows: language not EN" == line for line in report.lines())


def test_near_duplicates_are_counted_among_the_tweets_kept(tmp_path):
    """--limit and --sample keep some of the tweets: the near-duplicates counted (the summary's and the bundle's
    manifest's ``load``) are those among them, not the whole split's (941 beside 348 tweets kept)."""
    from model_build.checkpoint import DataSpec

    write_odd_replab(tmp_path)
    assert DataSpec(str(tmp_path)).load()[1].near_duplicates == 1
    examples, report = DataSpec(str(tmp_path), limit=2).load()
    assert [e.tweet_id for e in examples] == ["1", "2"] and report.near_duplicates == 0  # tweet 4 is the one marked
    assert "near-duplicate" not in " ".join(report.lines())
    examples, report = DataSpec(str(tmp_path), limit=3).load()
    assert [e.tweet_id for e in examples] == ["1", "2", "4"] and report.near_duplicates == 1


def test_unrelated_tweets_join_with_no_polarity(tmp_path):
    write_odd_replab(tmp_path)
    examples, report = load_replab(tmp_path, unrelated=True)
    assert [(e.tweet_id, e.label, e.related) for e in examples][-1] == ("7", None, False)
    assert report.kept == 5 and examples[-1].text == "apple pie"


def test_all_languages(tmp_path):
    write_odd_replab(tmp_path)
    examples, _ = load_replab(tmp_path, language=None)
    assert len(examples) == 5


def test_invalid_utf8_is_read_with_replacement_and_counted(tmp_path):
    raw = (INFO_HEADER + info_row(1, "E1", ts=30) + info_row(2, "E1") + info_row(4, "E1")).encode()
    write_odd_replab(tmp_path, info_bytes=raw.replace(b'"a"', b'"\xff\xfe"', 1))
    examples, report = load_replab(tmp_path)
    assert report.undecodable_files == ["E1.dat"]
    assert len(examples) == 4
    assert any("not valid UTF-8" in line for line in report.lines())


def test_missing_directory_and_wrong_columns(tmp_path):
    with pytest.raises(BuildError, match="directory not found"):
        load_replab(tmp_path)
    write_odd_replab(tmp_path)
    (tmp_path / "training" / "goldstandard" / "goldstandard_polarity.dat").write_text('"entity"\t"id"\n')
    with pytest.raises(BuildError, match="expected columns"):
        load_replab(tmp_path)
    (tmp_path / "replab2013_entities.tsv").unlink()
    with pytest.raises(BuildError, match="file not found"):
        load_replab(tmp_path)
    with pytest.raises(BuildError, match="no such file"):
        load(tmp_path / "absent.csv")


def test_an_unclosed_quote_names_its_line(tmp_path):
    """An unclosed quote makes the csv module read on to a field over its size limit: one line naming where."""
    write_odd_replab(tmp_path)
    texts = tmp_path / "training" / "texts" / "E2.tsv"
    texts.write_text(texts.read_text() + '"2"\t"b"\t"E2"\t"an unclosed quote' + "x" * 200_000 + "\n")
    with pytest.raises(BuildError, match=r"E2.tsv: field larger than field limit \(131072\) by line 3 "):
        load_replab(tmp_path)
    table = tmp_path / "t.csv"
    table.write_text('text,label\nfine,positive\n"an unclosed quote' + "x" * 200_000 + ",neutral\n")
    with pytest.raises(BuildError, match=r"t.csv: field larger than field limit \(131072\) by line 3 "):
        load_table(table)
    table.write_bytes(gzip.compress(b"text,label\nfine,positive\n"))  # a compressed file: not blamed on its header
    with pytest.raises(BuildError, match="t.csv: not a text file: it holds NUL bytes"):
        load_table(table)


def test_csv_and_jsonl(tmp_path):
    csv_file = tmp_path / "t.csv"
    csv_file.write_text('text,label,entity\n"Great, really",Positive,Acme\nmeh,neutral,\u200b\n,negative,Acme\n'
                        'bad,angry,Acme\n\u200b\u2066,neutral,Acme\n', encoding="utf-8")
    examples, report = load_table(csv_file)
    assert [(e.text, e.label, e.entity) for e in examples] == [("Great, really", "positive", "Acme"), ("meh", "neutral", None)]
    assert report.dropped == {"empty or missing text": 2, UNKNOWN_LABEL: 1} and report.without_entity == 1
    assert report.lines()[1:] == ["dropped 2 rows: empty or missing text (record 3, record 5)",
                                  f"dropped 1 rows: {UNKNOWN_LABEL} (record 4)"]  # records as the offline command counts
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text(json.dumps({"text": "ok", "label": "NEGATIVE", "entity": "BMW"}) + "\n[1]\n{broken\n\n"
                     + json.dumps({"text": 3, "label": "neutral"}) + "\n")
    examples, report = load(jsonl)
    assert [(e.text, e.label, e.entity) for e in examples] == [("ok", "negative", "BMW")]
    assert report.dropped == {"line is not a JSON object": 2, "text is not a string": 1}
    assert report.lines()[1:] == ["dropped 2 rows: line is not a JSON object (record 2, record 3)",
                                  "dropped 1 rows: text is not a string (record 4)"]  # the blank line not counted
    (tmp_path / "w.csv").write_text("tweet,polarity\na,positive\n")
    with pytest.raises(BuildError, match="expected columns text,label"):
        load_table(tmp_path / "w.csv")


def test_a_tweet_corrected_again_counts_once_as_last_given(tmp_path):
    """A feedback file where a person corrected a tweet twice: the later correction replaces the earlier one (same entity
    and text, exactly), in the later one's place; the same text for another entity is another example."""
    lines = [{"text": "recall of 300,000 cars", "entity": "BMW", "label": "neutral"},
             {"text": "recall of 300,000 cars", "entity": "Audi", "label": "neutral"},
             {"text": "love the new i3", "entity": "BMW", "label": "positive"},
             {"text": "recall of 300,000 cars", "entity": "BMW", "label": "negative"},
             {"text": "love the new i3", "entity": "BMW", "label": "positive"}]
    path = tmp_path / "feedback.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    examples, report = load_table(path)
    assert [(e.entity, e.label) for e in examples] == [("Audi", "neutral"), ("BMW", "negative"), ("BMW", "positive")]
    assert report.lines()[1:] == [f"dropped 2 rows: {GIVEN_AGAIN} (record 1, record 3)"] and report.kept == 3
    # "not about it" after a label: the label goes, also where tweets not about the entity are not kept
    path.write_text("".join(json.dumps(line) + "\n" for line in (lines[0], {**lines[0], "label": None, "related": False})))
    assert load_table(path)[0] == [] and [(e.label, e.related) for e in load_table(path, unrelated=True)[0]] == [(None, False)]


def test_no_tweet_text_in_the_load_report_and_no_rows_merged_by_a_quote(tmp_path):
    """The report goes into checkpoints and bundles (served at /v1/model): a tweet pushed into the label column by an
    unquoted comma is counted as such, never quoted; a quote left open refuses the file instead of merging rows."""
    path = tmp_path / "t.csv"
    path.write_text("text,label,entity\nAcme lost my parcel, worst courier ever,negative,Acme\nfine,positive,Acme\n"
                    "not fine,(rude staff again),Acme\nok,pos,Acme\n")
    examples, report = load_table(path)
    assert [e.text for e in examples] == ["fine"]
    assert report.dropped == {"more fields than the header": 1, UNKNOWN_LABEL: 2}  # no value quoted
    path.write_text("text,label,related\nok,positive,rude staff again\n")
    assert load_table(path)[1].dropped == {UNKNOWN_RELATED: 1}
    assert "courier" not in json.dumps(report.to_dict()) and "rude" not in json.dumps(report.to_dict())
    path.write_text("text,label\n" + "".join(f'"tweet {i}",positive\n' for i in range(5)).replace('"tweet 2"', '"tweet 2'))
    with pytest.raises(BuildError, match=r"t.csv: ',' expected after '\"' by line 5 \(an unclosed quote on it or before"):
        load_table(path)
    path.write_text("Loved,positive\nmeh,neutral\n")  # no header row: its tweet is not named, one word as it is
    with pytest.raises(BuildError, match=r"found 2 others \(a name other than entity, label, related and text is not "
                                        r"shown: without a header row it is a tweet's\)$"):
        load_table(path)
    path.write_text("text,label,text\nfine,positive,other\n")
    with pytest.raises(BuildError, match=r"column text appears more than once in the header: give each column once$"):
        load_table(path)
    path.write_text("Text,label\nfine,positive\n")
    with pytest.raises(BuildError, match=r"found 'Text', label; column names are matched exactly, in lower case$"):
        load_table(path)


def test_the_first_dropped_records_of_each_file_are_named(tmp_path):
    from model_build.data import LoadReport
    main, extra = tmp_path / "main.csv", tmp_path / "extra.jsonl"
    main.write_text("text,label\n" + "".join(f"t{i},{'positive' if i % 2 else 'nope'}\n" for i in range(16)))
    extra.write_text(json.dumps({"text": "x", "label": "nope"}) + "\n")
    _, report = load_table(main)
    assert report.lines()[1] == f"dropped 8 rows: {UNKNOWN_LABEL} (record 1, record 3, record 5, record 7, record 9, ...)"
    total, report = LoadReport(), load_table(extra)[1]
    total.add(report, str(extra))
    assert total.lines()[1] == f"dropped 1 rows: {UNKNOWN_LABEL} ({extra} record 1)"
    replab = LoadReport()
    replab.drop(UNKNOWN_LABEL)  # RepLab's rows have no record number: no list that would leave them out
    replab.add(report, str(extra))
    assert replab.lines()[1] == f"dropped 2 rows: {UNKNOWN_LABEL}"
    jsonl = tmp_path / "sep.jsonl"  # lines split as the offline command splits them: not at U+2028 inside a string
    jsonl.write_text(json.dumps({"text": "a\u2028b", "label": "positive"}, ensure_ascii=False) + "\n"
                     + json.dumps({"text": 5, "label": "nope"}) + "\n")
    examples, report = load_table(jsonl)
    assert [e.text for e in examples] == ["a\u2028b"]
    assert report.lines()[1:] == ["dropped 1 rows: text is not a string (record 2)"]


def test_csv_related_column(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("text,label,entity,related\na,positive,Acme,\nb,,Acme,unrelated\nc,negative,Acme,yes\n"
                    "d,,Acme,\ne,neutral,Acme,perhaps\nf,negative,Acme,no\n")
    examples, report = load_table(path, unrelated=True)
    assert [(e.text, e.label, e.related) for e in examples] == [("a", "positive", True), ("b", None, False),
                                                                ("c", "negative", True), ("f", None, False)]
    assert report.dropped == {"no polarity label": 1, UNKNOWN_RELATED: 1}  # f's label ignored: not about Acme
    examples, report = load_table(path)  # polarity only
    assert [e.text for e in examples] == ["a", "c"]
    assert report.dropped == {"no polarity label": 1, "not about the entity (no polarity)": 2, UNKNOWN_RELATED: 1}
    assert parse_related(" Related ") is True and parse_related("0") is False and parse_related("") is None
    with pytest.raises(ValueError, match="related must be one of"):
        parse_related("maybe")


def test_time_split_holds_out_the_latest_per_entity(tmp_path):
    write_odd_replab(tmp_path)
    examples, _ = load_replab(tmp_path)
    train, gap, val = split_by_time(examples, 0.34, seed=1)
    assert [e.tweet_id for e in val] == ["1"] and gap == []  # the latest E1 tweet (timestamp 30)
    assert split_by_time(examples, 0.34, seed=1) == (train, gap, val)


def test_time_gap_leaves_tweets_out_between_training_and_validation(tmp_path):
    from model_build.checkpoint import DataSpec

    write_odd_replab(tmp_path)
    examples, _ = load_replab(tmp_path, unrelated=True)  # E1 by time: 2 (10), 4 (20), 1 (30), 7 (40)
    train, val = SplitSpec(val_fraction=0.25, gap_fraction=0.25).apply(examples)
    assert [e.tweet_id for e in val] == ["7"] and [(e.entity_id, e.tweet_id) for e in train] == [
        ("E1", "2"), ("E1", "4"), ("E2", "1")]  # tweet 1 is the gap; E2's one tweet rounds into training
    spec = DataSpec(str(tmp_path), unrelated=True, holdout=SplitSpec(val_fraction=0.25, gap_fraction=0.25))
    loaded = spec.load()[0]
    _, gap, _ = spec.partition(loaded)
    assert [(e.entity_id, e.tweet_id) for e in gap] == [("E1", "1")] and spec.splits() == (train, val)


@pytest.mark.parametrize("es_time, es_trains", [(15, True), (1000, False)])
def test_another_language_only_trains_and_never_after_the_entitys_training_tweets(tmp_path, es_time, es_trains):
    from model_build.checkpoint import DataSpec

    write_odd_replab(tmp_path, info_bytes=(INFO_HEADER + info_row(1, "E1", ts=30) + info_row(2, "E1", ts=10)
                                       + info_row(3, "E1", "ES", ts=es_time) + info_row(4, "E1", ts=20)
                                       + info_row(7, "E1", ts=40)).encode())
    gap = SplitSpec(val_fraction=0.25, gap_fraction=0.25)
    english = DataSpec(str(tmp_path), unrelated=True, holdout=gap)
    both = DataSpec(str(tmp_path), unrelated=True, holdout=gap, also_language="ES")
    (train, val), (train_en, val_en) = both.splits(), english.splits()
    assert val == val_en and [e.tweet_id for e in val] == ["7"]  # validation stays English, the same tweets
    assert [e.tweet_id for e in train if e.language == "ES"] == (["3"] if es_trains else [])  # E1 trained up to 20
    assert train[: len(train_en)] == train_en
    gaps = [spec.partition(spec.load()[0])[1] for spec in (both, english)]
    assert [e.tweet_id for e in gaps[0]] == [e.tweet_id for e in gaps[1]] == ["1"]  # English, as validation
    no_val = DataSpec(str(tmp_path), unrelated=True, holdout=SplitSpec(val_fraction=0, gap_fraction=0.25),
                      also_language="ES")
    train, gap, _ = no_val.partition(no_val.load()[0])  # a gap and nothing after it: still the latest
    assert [e.tweet_id for e in gap] == ["7"] and [e.tweet_id for e in train if e.language == "ES"] == (
        ["3"] if es_trains else [])
    everything = DataSpec(str(tmp_path), unrelated=True, holdout=SplitSpec(val_fraction=0), also_language="ES")
    assert [e.tweet_id for e in everything.splits()[0] if e.language == "ES"] == ["3"]
    assert DataSpec.from_dict(both.to_dict()) == both
    with pytest.raises(BuildError, match="another language to validate on"):
        DataSpec(str(tmp_path), also_language="EN")


def test_a_share_of_the_training_tweets_is_named_by_the_entitys_full_name(tmp_path):
    from model_build.checkpoint import DataSpec

    write_odd_replab(tmp_path, info_bytes=(INFO_HEADER + "".join(info_row(i, "E1", ts=i) for i in range(1, 8))).encode())
    (tmp_path / "training" / "goldstandard" / "goldstandard_polarity.dat").write_text(
        '"entity_id"\t"tweet_id"\t"polarity"\n' + "".join(f'"E1"\t"{i}"\t"POSITIVE"\n' for i in range(1, 7)))
    gap = SplitSpec(val_fraction=0.25, gap_fraction=0)
    plain = DataSpec(str(tmp_path), holdout=gap)
    train, val = plain.splits()
    assert {e.entity for e in train + val} == {"Bank of America"} and len(train) == 4
    for share, named in ((1, 4), (0, 0)):
        spec = DataSpec(str(tmp_path), holdout=gap, full_names=share)
        full_train, full_val = spec.splits()
        assert full_val == val and [e.tweet_id for e in full_train] == [e.tweet_id for e in train]
        assert sum(e.entity == "BoA" for e in full_train) == named and DataSpec.from_dict(spec.to_dict()) == spec
    def named(seed):
        return [e.entity for e in DataSpec(str(tmp_path), holdout=SplitSpec(val_fraction=0.25, seed=seed),
                                           full_names=0.5).splits()[0]]

    halves = [named(seed) for seed in range(20)]  # seeded: the same names on every load, others with another seed
    assert halves[1] == named(1)
    assert len({tuple(h) for h in halves}) > 2 and 0.3 < sum(h.count("BoA") for h in halves) / 80 < 0.7
    with pytest.raises(BuildError, match="full name must be in"):
        DataSpec(str(tmp_path), full_names=1.5)


def test_a_bundles_aliases_are_the_full_names_its_training_tweets_never_carried(tmp_path):
    """package's entity aliases map each trained entity's full name to the name its training tweets carried; a full
    name some tweets carried (--full-names), one that reads as a trained name or as nothing, and one two entities
    share are left out; entities not trained on get none."""
    from model_build.checkpoint import DataSpec
    from model_build.package import trained_names

    write_odd_replab(tmp_path)
    settings = TextSettings()
    train, val = DataSpec(str(tmp_path)).splits()
    assert trained_names(train + val, settings) == {"BMW AG": "BMW", "BoA": "Bank of America"}
    assert trained_names([e for e in train + val if e.entity == "BMW"], settings) == {"BMW AG": "BMW"}
    boa, bmw = train[0], next(e for e in train + val if e.entity == "BMW")
    assert trained_names([boa, boa.named_in_full(), bmw], settings) == {"BMW AG": "BMW"}  # BoA trained as itself
    assert trained_names([boa, replace(bmw, entity_name="BoA")], settings) == {}  # the full name of both
    assert trained_names([replace(boa, entity_name=" BANK of  america "), replace(bmw, entity_name="\u200b"),
                          replace(bmw, entity="Acme", entity_name="www.acme.com")], settings) == {"www.acme.com": "Acme"}
    assert trained_names([boa, replace(boa, entity="bank of AMERICA")], settings) == {"BoA": "Bank of America"}
    assert trained_names([boa], replace(settings, lowercase=False)) == {"BoA": "Bank of America"}
    assert trained_names([replace(boa, entity_name="bank of america")], replace(settings, lowercase=False)) == {
        "bank of america": "Bank of America"}  # a model that reads case reads the two apart


def test_recency_weights_each_entitys_training_tweets_by_their_order_in_time(tmp_path):
    from model_build.checkpoint import DataSpec

    write_odd_replab(tmp_path)  # E1 by time: 2 (10), 4 (20), 1 (30), 7 (40); E2: 1 (5)
    gap = SplitSpec(val_fraction=0.25, gap_fraction=0)
    plain, spec = DataSpec(str(tmp_path), unrelated=True, holdout=gap), DataSpec(
        str(tmp_path), unrelated=True, holdout=gap, recency=0.25)
    (train, val), (weighted, weighted_val) = plain.splits(), spec.splits()
    assert weighted_val == val and [e.tweet_id for e in weighted] == [e.tweet_id for e in train]
    weights = {(e.entity_id, e.tweet_id): e.weight for e in weighted}
    assert weights == pytest.approx({("E1", "2"): 0.4, ("E1", "4"): 1.0, ("E1", "1"): 1.6, ("E2", "1"): 1.0})
    assert all(e.weight == 1.0 for e in train) and DataSpec.from_dict(spec.to_dict()) == spec
    assert DataSpec.from_dict({k: v for k, v in plain.to_dict().items() if k != "recency"}) == plain  # older runs
    with pytest.raises(BuildError, match=r"oldest training tweet's weight must be in \(0, 1\]"):
        DataSpec(str(tmp_path), recency=0)
    with pytest.raises(BuildError, match="none of the training tweets has one"):  # a CSV has no times
        DataSpec(str(FIXTURES / "tweets.csv"), recency=0.5).splits()


def test_unseen_entities_are_held_out_whole():
    from model_build.data import Example

    seen = UNSEEN_ENTITIES[0].replace("E001", "E002")  # BMW's neighbour, not held out
    examples = [Example("t", "positive", entity_id=e) for e in (UNSEEN_ENTITIES[0], seen, UNSEEN_ENTITIES[-1])]
    train, val = SplitSpec(Holdout.ENTITIES).apply(examples)
    assert [e.entity_id for e in train] == [seen] and len(val) == 2 and len(UNSEEN_ENTITIES) == 12
    assert SplitSpec(Holdout.ENTITIES).parts(examples) == (train, [], val)  # no gap
    assert UNSEEN_ENTITIES[0].endswith("D01E001") and UNSEEN_ENTITIES[-1].endswith("D04E169")
    assert SplitSpec.from_dict(SplitSpec(Holdout.ENTITIES, 0.2, 0.1, 7).to_dict()) == SplitSpec(Holdout.ENTITIES, 0.2, 0.1, 7)
    with pytest.raises(BuildError, match="leave tweets to train on"):
        SplitSpec(val_fraction=0.6, gap_fraction=0.5)


def test_no_gap_where_tweets_have_no_time():
    """Tweets without timestamps (a user's CSV) are shuffled into training and validation; none is dropped."""
    from model_build.data import Example
    from model_build.splits import SplitSpec

    examples = [Example(f"tweet {i}", "positive", "Zorblax") for i in range(100)]
    train, val = SplitSpec(val_fraction=0.15, gap_fraction=0.15).apply(examples)
    assert (len(train), len(val)) == (85, 15) and {e.text for e in train + val} == {e.text for e in examples}


def write_stance(root, targets):
    """A TweetEval-layout stance folder: ``targets`` maps a target folder to its (tweet, label id) rows."""
    root.mkdir()
    (root / "mapping.txt").write_text("0\tnone\n1\tagainst\n2\tfavor\n")
    for name, rows in targets.items():
        (root / name).mkdir()
        (root / name / "train_text.txt").write_text("".join(f"{t}\n" for t, _ in rows))
        (root / name / "train_labels.txt").write_text("".join(f"{y}\n" for _, y in rows))


def test_stance_tweets_are_polarity_towards_their_target(tmp_path):
    from model_build.data import load_stance

    write_stance(tmp_path / "stance", {"hillary": [("she will win #SemST ", 2), ("never her", 1), ("lunch time", 0)],
                                       "my target": [("love it #semst", 2), ("  ", 1)]})
    (tmp_path / "stance" / ".ipynb_checkpoints").mkdir()  # a hidden folder is no target
    got = [(e.text, e.label, e.entity, e.related, e.sentiment) for e in load_stance(tmp_path / "stance")]
    assert got == [("she will win", "positive", "Hillary Clinton", None, None),
                   ("never her", "negative", "Hillary Clinton", None, None),
                   ("lunch time", "neutral", "Hillary Clinton", None, None),
                   ("love it", "positive", "my target", None, None)]  # an empty line is no tweet
    (tmp_path / "stance" / "mapping.txt").write_text("0\tnegative\n1\tneutral\n2\tpositive\n")
    with pytest.raises(BuildError, match=r"labels \['negative', 'neutral', 'positive'\] are not \['favor', 'none', "):
        load_stance(tmp_path / "stance")
    write_stance(tmp_path / "flat", {})
    with pytest.raises(BuildError, match="no target folders"):
        load_stance(tmp_path / "flat")
    write_stance(tmp_path / "short", {"atheism": [("a", 0), ("b", 3)]})
    with pytest.raises(BuildError, match="2 tweets against 2 labels, or an unknown label"):
        load_stance(tmp_path / "short")
    with pytest.raises(BuildError, match="no mapping.txt"):
        load_stance(tmp_path / "nowhere")


def test_a_tweeteval_tweet_holding_a_line_separator_stays_one_tweet(tmp_path):
    """A tweet a line, lines ending at a newline (\\r\\n too): U+2028, U+0085 or a form feed inside a tweet split
    nothing."""
    from model_build.data import load_sentiment

    (tmp_path / "mapping.txt").write_text("0\tnegative\n1\tneutral\n2\tpositive\n", encoding="utf-8")
    tweets = ["first line\u2028second line", "a\x85b", "page\x0cbreak", "plain"]
    (tmp_path / "train_text.txt").write_text("\r\n".join(tweets) + "\r\n", encoding="utf-8", newline="")
    (tmp_path / "train_labels.txt").write_text("2\r\n0\r\n1\r\n2\r\n", encoding="utf-8", newline="")
    assert [(e.text, e.sentiment) for e in load_sentiment(tmp_path)] == list(
        zip(tweets, ["positive", "negative", "neutral", "positive"]))


def test_a_tweet_in_two_files_counts_once_as_the_later_file_gives_it(tmp_path):
    """--data and --extra are read as one: a tweet in two files (a feedback snapshot, and a later one holding it) counts
    once, as the later file gives it; it used to train in one part of the split and validate in another. The counts
    say what each file lost."""
    from model_build.checkpoint import DataSpec
    from model_build.data import example_key

    first, n = FIXTURES / "tweets.csv", len(load_table(FIXTURES / "tweets.csv")[0])
    header, top, *rest = first.read_text().splitlines(keepends=True)
    later = tmp_path / "later.csv"  # the first tweet corrected, and one more
    flipped = top.replace(",positive,", ",negative,")
    assert flipped != top
    later.write_text(header + flipped + "".join(rest) + "Acme opened a store in town,neutral,Acme,\n")
    spec = DataSpec(str(first), extra=(str(later),), extra_weight=2.0, holdout=SplitSpec(val_fraction=0.3, gap_fraction=0))
    examples, report = spec.load()
    assert len(examples) == report.kept == n + 1 and {e.weight for e in examples} == {2.0}
    assert [e.label for e in examples if e.text == load_table(first)[0][0].text] == ["negative"]
    assert report.dropped[f"given again in {later} (the later file's copy counts)"] == n
    train, gap, val = spec.partition(examples)
    assert val and not {example_key(e) for e in val} & {example_key(e) for e in train}


def test_a_replab_tweet_given_again_in_a_table_counts_once_as_the_table_gives_it(tmp_path):
    """A table has no tweet ids: a RepLab tweet in an --extra file (a feedback file of tweets tried on the service) is
    matched by its text, under its query or full name in any case, or under no entity; the table's copy counts."""
    from model_build.checkpoint import DataSpec
    from tests.test_curve import write_replab

    write_replab(tmp_path / "replab")
    replab = DataSpec(str(tmp_path / "replab"), unrelated=True)
    examples, _ = replab.load()
    first, second, third = [e for e in examples if e.label is not None][:3]
    table = tmp_path / "feedback.csv"
    with table.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label", "entity"])
        writer.writerow([first.text, "negative" if first.label != "negative" else "positive", first.entity.upper()])
        writer.writerow([second.text, second.label, second.entity_name])
        writer.writerow([third.text, third.label, ""])
        writer.writerow([third.text + " and more", third.label, third.entity])  # another tweet
    both, report = replace(replab, extra=(str(table),)).load()
    under_any = sum(e.text == third.text for e in examples)  # the same text under both of the fixture's entities
    assert under_any == 2 and len(both) == report.kept == len(examples) + 4 - 2 - under_any
    assert report.dropped[f"given again in {table} (the later file's copy counts)"] == 2 + under_any
    flipped = "negative" if first.label != "negative" else "positive"
    ours = [(e.label, e.tweet_id) for e in both if e.text == first.text and e.entity.casefold() == first.entity.casefold()]
    assert ours == [(flipped, None)]
    others = [e.entity for e in both if e.text == first.text and e.tweet_id]  # the same text, another entity's tweet
    assert others and first.entity not in others
    assert [e.tweet_id for e in both if e.text == third.text] == [None]


def test_an_extra_file_naming_a_held_out_entity_is_refused_with_the_entities_holdout(tmp_path):
    """--holdout entities validates on entities no training tweet is about; an --extra file's tweets all train, so one
    naming such an entity (by its query or its full name, in any case) would make those figures another model's."""
    from app.text import InputFormat
    from model_build.checkpoint import DataSpec
    from tests.test_curve import write_replab

    write_replab(tmp_path / "replab")  # its unseen entity's query is Acme, as the fixture tweets' entity
    spec = DataSpec(str(tmp_path / "replab"), holdout=SplitSpec(Holdout.ENTITIES), extra=(str(FIXTURES / "tweets.csv"),))
    examples, report = spec.load()
    with pytest.raises(BuildError, match="^--holdout entities validates on entities no training tweet is about, and "
                                         "--extra tweets name Acme, one of them: leave those"):
        spec.check(examples, report, InputFormat.PAIR)
    assert spec.with_holdout(SplitSpec()).check(examples, report, InputFormat.PAIR) == []  # by time: they train
