"""Write the bench's shipped samples (run from the repository root: ``python core/bench/data/make_samples.py``).

``stsb/`` and ``nli/`` are excerpts of the real files in ``../shared/data`` (first rows, verbatim);
``captions/`` copies the generated shapes of ``recipes/grounded_sentence/data``; ``fin_sentiment/``,
``wassa22/``, ``topicseg_choi/`` and ``btc_text/`` are generated here from templates (no third-party
text), in the exact file layout of the real folders, so every task's reader and scorer runs on them.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
SHARED = REPO.parent / "shared" / "data" if (REPO.parent / "shared").is_dir() else Path("/work/shared/data")


def gz_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=9) as fh:
        fh.write(text.encode("utf-8"))


def excerpts() -> None:
    with gzip.open(SHARED / "stsb" / "sts-dev.csv.gz", "rt", encoding="utf-8", newline="") as fh:
        lines = fh.read().split("\n")
    gz_write(HERE / "stsb" / "sts-dev.csv.gz", "\n".join(lines[:200]) + "\n")
    with gzip.open(SHARED / "nli" / "snli_1.0_test.tsv.gz", "rt", encoding="utf-8", newline="") as fh:
        lines = fh.read().split("\n")
    header, body = lines[0], [x for x in lines[1:] if x]
    premises = list(dict.fromkeys(x.split("\t")[0] for x in body))[:80]
    keep = set(premises)
    gz_write(
        HERE / "nli" / "snli_1.0_test.tsv.gz",
        "\n".join([header, *[x for x in body if x.split("\t")[0] in keep]]) + "\n",
    )


def captions() -> None:
    src = REPO / "recipes" / "grounded_sentence" / "data"
    out = HERE / "captions"
    (out / "images").mkdir(parents=True, exist_ok=True)
    for png in sorted(src.glob("shape_*.png")):
        shutil.copyfile(png, out / "images" / png.name)
    shutil.copyfile(src / "tiny_captions.tsv", out / "captions.tsv")


COMPANIES = ["Nordic Steel", "Baltic Foods", "Helsinki Paper", "Aurora Telecom", "Lakeside Energy", "Polar Retail"]
POSITIVE = [
    "{c} 's operating profit rose to EUR {n} mn from EUR {m} mn .",
    "{c} wins a EUR {n} mn order .",
    "Net sales of {c} increased by {p} % .",
    "{c} raises its full-year guidance .",
]
NEGATIVE = [
    "{c} 's operating loss widened to EUR {n} mn .",
    "{c} cuts {n} jobs as demand falls .",
    "Net sales of {c} decreased by {p} % .",
    "{c} issues a profit warning .",
]
NEUTRAL = [
    "{c} will publish its interim report on {d} .",
    "{c} is headquartered in Espoo .",
    "The annual general meeting of {c} will be held in {d} .",
    "{c} operates {n} stores .",
]
MONTHS = ["March", "April", "May", "June", "October", "November"]


def fin_sentiment(rng: random.Random) -> None:
    rows = ["sentence\tlabel"]
    for label, templates in (("positive", POSITIVE), ("negative", NEGATIVE), ("neutral", NEUTRAL)):
        for i in range(30):
            t = templates[i % len(templates)]
            s = t.format(
                c=rng.choice(COMPANIES),
                n=rng.randint(2, 90),
                m=rng.randint(2, 90),
                p=rng.randint(2, 40),
                d=rng.choice(MONTHS),
            )
            rows.append(f"{s}\t{label}")
    gz_write(HERE / "fin_sentiment" / "fpb_sentences_50Agree.tsv.gz", "\n".join(rows) + "\n")


EMOTION_WORDS = {
    "sadness": ["sad", "heartbroken", "grieving", "sorrowful"],
    "anger": ["angry", "furious", "outraged", "livid"],
    "fear": ["afraid", "scared", "terrified", "anxious"],
    "joy": ["happy", "glad", "delighted", "relieved"],
}
TOPICS = ["the flood in the valley", "the refugees at the border", "the factory closure", "the hospital strike"]


def wassa(rng: random.Random) -> None:
    def essay(emotion: str) -> str:
        w = rng.sample(EMOTION_WORDS[emotion], 2)
        topic = rng.choice(TOPICS)
        return (
            f"After reading about {topic} I feel {w[0]} . It makes me {w[1]} to think about the families . "
            f"I hope people read this story ."
        )

    train = ["message_id\tresponse_id\tarticle_id\tempathy\tdistress\tempathy_bin\tdistress_bin\tessay\temotion"]
    for i in range(80):
        emotion = list(EMOTION_WORDS)[i % 4]
        train.append(f"R_{i}_1\tR_{i}\t{i % 7}\t4.0\t3.5\t1\t0\t{essay(emotion)}\t{emotion}")
    dev = ["message_id\tresponse_id\tarticle_id\tessay\tgender\teducation\trace\tage\tincome"]
    gold = []
    for i in range(24):
        emotion = list(EMOTION_WORDS)[i % 4]
        dev.append(f"D_{i}_1\tD_{i}\t{i % 5}\t{essay(emotion)}\t1\t4\t1\t30\t40000")
        gold.append(f"4.0\t3.0\t{emotion}\t5\t5\t4\t5\t4.5\t4.4\t2.3\t4.1\t3.1")
    gz_write(HERE / "wassa22" / "messages_train_ready_for_WS.tsv.gz", "\n".join(train) + "\n")
    gz_write(HERE / "wassa22" / "messages_dev_features_ready_for_WS_2022.tsv.gz", "\n".join(dev) + "\n")
    gz_write(HERE / "wassa22" / "goldstandard_dev_2022.tsv.gz", "\n".join(gold) + "\n")


SUBJECTS = {
    "harbour": ["the ships", "the dock workers", "the harbour master", "the cargo cranes"],
    "election": ["the candidates", "the voters", "the county clerk", "the ballots"],
    "orchestra": ["the violinists", "the conductor", "the audience", "the choir"],
    "farm": ["the farmers", "the wheat harvest", "the tractors", "the cattle"],
    "laboratory": ["the chemists", "the samples", "the microscope", "the experiment"],
}
VERBS = ["waited for", "talked about", "prepared", "watched", "returned to", "argued over"]


def choi(rng: random.Random) -> None:
    texts = {
        k: [f"{rng.choice(v).capitalize()} {rng.choice(VERBS)} {rng.choice(v)} in the {k} ." for _ in range(8)]
        for k, v in SUBJECTS.items()
    }
    lines = []
    for doc_id in range(6):
        segments = []
        for _ in range(4):
            k = rng.choice(list(texts))
            segments.append(texts[k][: rng.randint(3, 8)])
        lines.append(
            json.dumps(
                {"path": f"sample/{doc_id}.ref", "group": "1", "range": "3-8", "doc_id": doc_id, "segments": segments}
            )
        )
    gz_write(HERE / "topicseg_choi" / "choi.jsonl.gz", "\n".join(lines) + "\n")


HEADLINES = {
    "technology": (
        "http://www.bbc.co.uk/news/technology-{n}",
        [
            "Hackers steal {n} bitcoins from exchange",
            "New wallet app promises safer bitcoin storage",
            "Bitcoin miners switch to faster chips",
        ],
    ),
    "business": (
        "https://dealbook.nytimes.com/2014/02/{d}/bitcoin-{n}/",
        [
            "Bank {n} to offer bitcoin accounts",
            "Retailer begins accepting bitcoin",
            "Start-up raises funds for bitcoin payments",
        ],
    ),
    "markets": (
        "http://money.cnn.com/2017/12/{d}/investing/bitcoin-{n}/index.html",
        [
            "Bitcoin price jumps {n} % in a day",
            "Investors pile into bitcoin futures",
            "Bitcoin falls below {n},000 dollars",
        ],
    ),
}


def btc(rng: random.Random) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["date", "published_raw", "outlet", "headline", "url", "content"])
    for url, heads in HEADLINES.values():
        for i in range(12):
            n, d = rng.randint(2, 99), f"{rng.randint(1, 28):02d}"
            writer.writerow(
                [
                    "2017-12-01",
                    "2017-12-01",
                    "sample",
                    heads[i % 3].format(n=n),
                    url.format(n=n, d=d),
                    "Text of the article,\nover two lines.",
                ]
            )
    writer.writerow(["2018-01-02", "x", "reuters", "Unlabelled headline", "https://www.reuters.com/article/idX", "x"])
    gz_write(HERE / "btc_text" / "btc_news_2011_2019.csv.gz", buf.getvalue())


if __name__ == "__main__":
    rng = random.Random(0)
    excerpts()
    captions()
    fin_sentiment(rng)
    wassa(rng)
    choi(rng)
    btc(rng)
    print(f"wrote samples under {HERE}")
