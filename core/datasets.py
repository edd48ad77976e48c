"""The datasets recipes use: where each comes from, its licence, its files and their sha256.

A config names a dataset file as ``data://<dataset>/<file>`` (``data://stsb/sts-dev.csv.gz``);
:func:`resolve_data_uri` finds it, in this order, in

1. the cache ``$POLYMODAL_DATA`` (default ``~/.cache/polymodal/data``, or under ``$XDG_CACHE_HOME``),
   where ``polymodal data fetch NAME`` puts it;
2. the team's shared folder, registered as an already-present source: ``$POLYMODAL_SHARED_DATA``,
   else ``../shared/data`` next to the checkout.

Nothing downloads implicitly: a missing dataset is a one-line error naming the
``polymodal data fetch`` command. ``fetch`` downloads ``<mirror>/<name>.tar.gz`` (``--from URL`` or
``$POLYMODAL_DATA_MIRROR``), resumes a partial download with an HTTP ``Range`` request, unpacks it
with tarfile's ``data`` filter (no absolute paths, ``..``, links or devices), checks every file's
sha256 and only then moves the folder into the cache.

The hashes below are those of the team's copies in ``/work/shared/data/<name>/`` (computed from
those files, 2026-12; see each folder's SOURCE.md for how they were derived from ``source``).
They are not the upstream files' hashes: several files were gzip'd or converted. A key ending in
``/`` is a folder, hashed by :func:`tree_sha256`.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "DATASETS",
    "DATA_SCHEME",
    "Dataset",
    "DatasetMissing",
    "cache_dir",
    "fetch",
    "locate",
    "resolve_data_uri",
    "search_roots",
    "shared_dir",
    "tree_sha256",
    "verify",
]

#: ``data://stsb/sts-dev.csv.gz`` names a file of a registered dataset.
DATA_SCHEME = "data://"


class DatasetMissing(FileNotFoundError):
    """A registered dataset is not present anywhere polymodal looks."""


@dataclass(frozen=True)
class Dataset:
    """One dataset: its upstream ``source`` (for attribution), ``licence`` as stated there, and the
    ``files`` of the team's copy (relative path -> sha256; ``dir/`` -> :func:`tree_sha256`)."""

    name: str
    title: str
    source: str
    licence: str
    bytes: int
    files: dict[str, str] = field(default_factory=dict)

    @property
    def fetch_command(self) -> str:
        return f"polymodal data fetch {self.name}"


# fmt: off
DATASETS: dict[str, Dataset] = {
    'stsb': Dataset(
        name='stsb',
        title="STS Benchmark train + dev (Cer et al. 2017), gzip'd byte-identical release files",
        source='https://github.com/zhangzhenhu/Semantic-Texual-Similarity-Toolkits/tree/c55a72f51bd15a8bd75114247c06984b432050f9/data/stsbenchmark',
        licence="scores CC BY-SA 4.0; sentences keep their origin corpora's licences (see LICENSE.txt)",
        bytes=347933,
        files={
            'LICENSE.txt': '3dfc3217395f8c5dd05c5f8995f25fe2f8fd258e6dd770b3de480749caee8c70',
            'SOURCE.md': 'c979c619ed743916a398cc8e81c2f5b2ed56fc3de84df19d341da8d93444ad64',
            'readme.txt': 'e9488363d211c32ca5e912954f16eb9233cfed1b5b4b0475d0d812d35d7c8ef1',
            'sts-dev.csv.gz': 'abf194bec5bfca9ddefaa10a5f911a0f3d82b2c9ec5d12d1daedec5fd48a9339',
            'sts-train.csv.gz': '814385c6954f03ad052d402efc9253ebed01849c23e35de7619c922cb6fa8628',
        },
    ),
    'nli': Dataset(
        name='nli',
        title='SNLI 1.0 dev + test with gold labels (via e-SNLI), premise/hypothesis/label TSV',
        source='https://github.com/OanaMariaCamburu/e-SNLI/tree/7b585a3f077fdea899780eb0473940522ae44a2e/dataset/eSNLI',
        licence='e-SNLI repository MIT; SNLI corpus CC BY-SA 4.0',
        bytes=900775,
        files={
            'SOURCE.md': '2b46489bd02171ab3530a58fa1e3497d299f73daf6a4342d50d3904a0c04f283',
            'raw/labels.dev.gz': '68433263b55e9dde4bc305ec05d7ec9b4ac0f4114dad469b7da79c3b27c44ff2',
            'raw/labels.test.gz': '856adcc2c1a511f320104c0866da0575ba914a17103af10f7f021c28f8e04766',
            'raw/s1.dev.gz': '9bec0283baf211b177d0b808c9d545a83759a6f2b628c12e56564eba21a555e9',
            'raw/s1.test.gz': '5097a2a3199cb94125002cacdadfde46331597ca737e45a25b613b85706625c3',
            'raw/s2.dev.gz': 'da0d56d886c385d5298fdad1c2db09d4133240431086733eabe822ea922251a8',
            'raw/s2.test.gz': '3b56cea171fb29b3a20d422636669f0a71f5f08696d3ea6e27a59c3911985dd0',
            'snli_1.0_dev.tsv.gz': '75e8a3f741238fb1c167a5e3277ac2feeeddf267058daa133a13a94c11da4fd8',
            'snli_1.0_test.tsv.gz': 'f9667f12f6e00505759a71fb35c17bad0b9009f620103414d17b12973153d6c3',
        },
    ),
    'captions': Dataset(
        name='captions',
        title='Flickr8k subset: 1,000 images x 5 captions (Hodosh et al. 2013)',
        source='https://github.com/quantumnaan/sic_translator/tree/d27da85cff2dbf143fcaf365aece667d66c4298f/data',
        licence='not stated; Flickr8k terms: research / non-commercial use only',
        bytes=18425395,
        files={
            'SOURCE.md': 'adf912c1aaf84a9684c7b9edd1a2484432c2aa5c173704412ee638aca64b6a5d',
            'captions.tsv': '4c09f1c0b8f9de2d2cc425c020f3340e698905b5157f510e2a492573551e6909',
            'images/': '25355437fcaeb56a0c774d374c608d3c8d39a44cb1797e9b1b27562ca0eecda2',
        },
    ),
    'btc': Dataset(
        name='btc',
        title='daily BTC prices and correlated assets (Yahoo Finance via three GitHub repositories)',
        source='https://github.com/murat-khabibullayev/Bitcoin-Price-Prediction-Project/tree/2de8b4b283ad78ffd9846290ecfb313416688639/data',
        licence='not stated (no LICENSE file in the source repositories)',
        bytes=625449,
        files={
            'SOURCE.md': '078970aeb15c2d29661641ea925fc1aa57e920741e70a22589aa829f641b0f1f',
            'btc_usd_daily_yahoo.csv.gz': '657572498baa2b0c55edffd39948d41b6f4909068417f48477196db3a1106838',
            'coin_Bitcoin.csv.gz': '1a4a55813cb8c5664b47534e75d627ebf1d9884df0ab4598590277c0bf0d9e60',
            'coin_Ethereum.csv.gz': '640fa9d05d91a75e461f6b14cca5e2072030104020c6625fadd611523af9b23c',
            'dji_daily.csv.gz': '628d70caf75790a43f6d19bbdad186bc38897e4cd9364cc1aea6d49b76f69da0',
            'eth_usd_adjclose_2019_2023.csv.gz': '913c50887c2b606f4485cd598ac2d508907f32bbf7f56671e4c28167252ecc87',
            'eurusd_daily_yahoo.csv.gz': '8e84b08bcdc598e6cf946ce4329c6ae3154ebc1eb0acc19e673d966e9bc3070e',
            'gold_gcf_daily_yahoo.csv.gz': 'afa63a35213fbabd0d7f7f6c726108f0e027134b5d4deba050b4b108b9f6a89d',
            'nasdaq_ixic_daily.csv.gz': 'b42245d63648a2259cf28f88e93877578a972cb3d650c7f85cdb0910e24c7ccc',
            'sp500_gspc_daily_yahoo.csv.gz': '9c5c3d45bbd844477c2f68d81a518229979c5ba3a9c72e4ed63d340e939725f8',
            'us10y_tnx_daily.csv.gz': 'f149c9b5be2357806b266f6ba901c73b1edf70bbc026db12a0d77740b2e94fa3',
            'vix_daily_yahoo.csv.gz': '5da138ffb3979d2580f0d62a1e51286f94e676d4b55d6ee17a52976fffbde710',
        },
    ),
    'btc_text': Dataset(
        name='btc_text',
        title='dated Bitcoin news articles 2011-06 to 2019-05 (BBC, CNN, NYT, Reuters)',
        source='https://github.com/alextruesdale/bitcoin-news-sentiment-analysis/tree/9dbacc2a7f25292b1abe579c55f6c4c39165a74a/data/scraped',
        licence='not stated; article text (c) the outlets: research/analysis use only',
        bytes=4948731,
        files={
            'SOURCE.md': '1777371d004a8a7f2c89b11641d3a25b6a7e2125a89f1f2f8df237c302063ac0',
            'btc_news_2011_2019.csv.gz': '4eb66bea271aa26ce3f5ecc29843a717518bccf69829b1ca6388d4a90bd1dd1d',
            'raw/bbc_bitcoin.csv.gz': 'ce0540992335e4077fbed67a86be067e357c72a358f349ad5cdd2510c49e934c',
            'raw/cnn_bitcoin.csv.gz': 'b5158e36199535bbfe3a9dbfffd456dae4b4d99d73f512d83d46a6b99528127a',
            'raw/nyt_bitcoin.csv.gz': '23e4b4a130e6f2f5b07d61ed4676a27fa4e4b180f7156561f11c56ca86fb0e96',
            'raw/reuters_bitcoin.csv.gz': 'd455c0a352d3de4623ff87249551f53b04778d977c6e3e04d0893fd8fb28f6ed',
        },
    ),
    'wassa22': Dataset(
        name='wassa22',
        title='WASSA 2022 empathy / distress / emotion shared task files (NewsEmpathy v2)',
        source='https://github.com/shenbinqian/WASSA_SharedTask/tree/8b0f4a67501d831e5faec431b3d9c9c04194eff4/data',
        licence="not stated; the WASSA 2022 organisers' CodaLab terms apply",
        bytes=511463,
        files={
            'SOURCE.md': '2b8ab29bd8da8dd152645e8251e0e12de34175e60a658096352c7c15f53221cc',
            'goldstandard_dev_2022.tsv.gz': '5456e70e5a35ba06daa6e162bacf6daff592eea4f931a32aa34a3f8b59c0abde',
            'messages_dev_features_ready_for_WS_2022.tsv.gz': 'fc2779edb49d5b0cd7ad7d0b25ec36021bfc7202bbe2b81a5ac1253c3b6ca15e',
            'messages_test_features_ready_for_WS_2022.tsv.gz': '9ccc393ab6a0e815754bf302a3cf1bf7762c05e35b007fea656adfe6c4e117b8',
            'messages_train_ready_for_WS.tsv.gz': 'de75f7320b5c63c1c1921af8a2fc72b7d4a4eaedbcd1997f1bba5c18e2878afd',
        },
    ),
    'topicseg_choi': Dataset(
        name='topicseg_choi',
        title='Choi (2000) synthetic topic-segmentation benchmark, 920 documents',
        source='https://github.com/koomri/text-segmentation/tree/874d6ef3ca0e402709b70924608d0894be9a93e1/data/choi',
        licence='not stated (text from the Brown corpus)',
        bytes=3512197,
        files={
            'README': 'f4f87dda6fe58f5b32104fa6087d5378b061e1e39ab08cf24a81f54d9677bf89',
            'SOURCE.md': 'f9eaa62bee5559c76e4ea6dc8d2efe7862a75a3a44cb885f22153b210686ac09',
            'Table.txt': '54647ede866510b8a0962f01f3716239ef0791e14c4a411574befb454af69ac7',
            'choi.jsonl.gz': '6a4ce69ab09b4cce6ff980aa25b00037e0be6cd34b426c5f74a9f10aa440b379',
            'experiment_code.txt': 'dabd1ffed9952a1ffc11edd764f4b98c5e1e3427d01de26a4685bccc6a4116cc',
        },
    ),
    'text_corpus': Dataset(
        name='text_corpus',
        title='Tiny Shakespeare (char-rnn input.txt)',
        source='https://github.com/karpathy/char-rnn/tree/6f9487a6fe5b420b7ca9afb0d7c078e37c1d1b4e/data/tinyshakespeare',
        licence="repository MIT; Shakespeare's text is public domain",
        bytes=434969,
        files={
            'SOURCE.md': '001f471f98c081a8b0f288bcd1078f28ae968d13ae3e9245dd7683f2f7015e77',
            'tinyshakespeare_input.txt.gz': 'bed00f18e91cda6838950656f0a95e07e0f4dbe8649a4b959f7602a7e53fbc6e',
        },
    ),
    'fin_sentiment': Dataset(
        name='fin_sentiment',
        title='Financial PhraseBank v1.0 (Malo et al. 2014), sentence-level sentiment',
        source='https://github.com/wychen-null/project_nlp_cuda/tree/1ea075323700e41e09f22fcc1682765177945f08/data/FinancialPhraseBank-v1.0',
        licence='CC BY-NC-SA 3.0 (non-commercial only)',
        bytes=1355883,
        files={
            'SOURCE.md': '4f8f851f918204e9c49603e1ee4684a69a7f9e9857f4ccac126c5f52fb56a1e6',
            'fpb_sentences_50Agree.tsv.gz': 'f55d3bc6f3a36f7c0e68fb09b5f92affc4a3c4934bd1eae65eed542de31fda88',
            'fpb_sentences_66Agree.tsv.gz': 'f1bb483e29ecafebe2112024e4958436e76c85a793ba137de0abac21cbd96fe5',
            'fpb_sentences_75Agree.tsv.gz': '6488ebfe0f932f861cd3b9bfd72777116724506cc4fbd75bde5db86af83d134f',
            'fpb_sentences_AllAgree.tsv.gz': '1ed847254755526ff84f22a960c0475bc15759c730d93416d68d3815fdee1ecb',
            'original/License.txt': 'fa4f941ef92f40d55dd34ddea45d96a20672607d152698bc160f8db3af5e36c7',
            'original/README.txt': '80241dd9639af987cd87bbb2d8872392c6d45596a488ebefca2d425da46f5809',
            'original/Sentences_50Agree.txt.gz': 'c8ad6b5dce3b952b1af3cc5509e9df8341021ba574098624596fd653819ed358',
            'original/Sentences_66Agree.txt.gz': '2e8a1a70a571cdcf313ea67615a50f7cca9ba99fd23fd517320479cad253bc56',
            'original/Sentences_75Agree.txt.gz': '0f4563996f30a25a8bbd80a40d648ef6abd7342380dda149e9a9e03a44e066ac',
            'original/Sentences_AllAgree.txt.gz': 'bbcee57c3e559d35d567a80b55cc27a01f7466cb4de26b066f9d9e54072fc3e5',
        },
    ),
    'ner': Dataset(
        name='ner',
        title='CrossNER 5 domains + CoNLL-2003 English, BIO-tagged',
        source='https://github.com/zliucr/CrossNER/tree/2e7ba2a7798c961e3f29fbc51252c5a8d40224bf/ner_data',
        licence='repository MIT; CoNLL-2003 text under Reuters RCV1 terms',
        bytes=1316910,
        files={
            'SOURCE.md': '76165b0cba9ff7594ba354a0eecd95cbe63c853ba5b88698cca38b9a5cff4d1e',
            'ai/dev.txt.gz': 'dab31fb26419d0347d2292634e4b389285b6332ad72c1b377bea801150b0f4d9',
            'ai/test.txt.gz': 'e2e38b8b4d6ec7e35b62a789cff93ebebb8bf20d18c03533a6aa857580aabd86',
            'ai/train.txt.gz': 'c563c7bb1a51cc915f5e32b5fe97818ab575eb2dd8e9fad95b3fb327debefd78',
            'conll2003/dev.txt.gz': '4e50f3ee17c9f70530fd1cd9b5d4b48338d77196aec504db086079b5831c3da9',
            'conll2003/test.txt.gz': '1b661c48b0dbdf93bee8c4f0d773f9e98e4f42c0820cd75489e35a958de22c9c',
            'conll2003/train.txt.gz': '541fc9dee1a6650602865719098639267f80098a1ff8989158729f590320425a',
            'literature/dev.txt.gz': 'ed5ed958b6d6adcd46bac6379f3bfc9780517aea6194c62e3ba8e4fef1394ea0',
            'literature/test.txt.gz': '1a2684ca9c576cb138f2bd618c187bb0babc50f863baab896e5f78550ec0f467',
            'literature/train.txt.gz': '6e866563d1a2fb07b83abc5ee6bfc2ca5d494b48c5fd6b09295de7270f614238',
            'music/dev.txt.gz': 'f8a2f077487ecc9128968d9abf985049bc4538762411ca85710ed97d83dbd69a',
            'music/test.txt.gz': '614acc874a49d1c5a706f3cd0f58428c928da98cd3e3ffe2f04729850b0412fb',
            'music/train.txt.gz': '5e4672f28bb7401164f6a00763cb9727ba9b74cdd6894c918ed63fe5863f6dc8',
            'politics/dev.txt.gz': 'a1a5c54201a0066bbdc05fcc263c7966c1816c3de1c3c896f83977186fab487a',
            'politics/test.txt.gz': '7d0e9c0d0583fb15833b510356b604ed4013ac74632cc230a6952d194f2ee0d1',
            'politics/train.txt.gz': '856e583ea7640fbfbd2d69568a84ca3c615a0be6b638b45539df7f93f5f0820c',
            'science/dev.txt.gz': '3944a61a588216af37254dfda19797da2694585468664afe550a7608016c2107',
            'science/test.txt.gz': 'af05e57d23cff071b32aa8679297c6ba215611cabbfaf1c50e34aacfe34d1760',
            'science/train.txt.gz': '9aa815085b16fd6c164a02153b4094c2b0b7a5e1acb64e997d5b6db775935fb3',
        },
    ),
}
# fmt: on


# ----------------------------------------------------------------------------- where datasets live
def cache_dir() -> Path:
    """``$POLYMODAL_DATA``, else ``$XDG_CACHE_HOME/polymodal/data``, else ``~/.cache/polymodal/data``."""
    if env := os.environ.get("POLYMODAL_DATA"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "polymodal" / "data"


def shared_dir() -> Path | None:
    """The team's shared data folder: ``$POLYMODAL_SHARED_DATA``, else ``../shared/data`` beside the
    checkout polymodal runs from, else beside the working directory (``None`` when none exists)."""
    if env := os.environ.get("POLYMODAL_SHARED_DATA"):
        p = Path(env).expanduser()
        return p if p.is_dir() else None
    checkout = Path(__file__).resolve().parent.parent  # core/ -> the checkout (editable installs)
    candidates = [checkout.parent / "shared" / "data"] if (checkout / "pyproject.toml").is_file() else []
    candidates.append(Path.cwd().parent / "shared" / "data")  # what the recipe YAMLs' ../shared/data meant
    return next((c for c in candidates if c.is_dir()), None)


def search_roots(extra: Path | None = None) -> list[tuple[str, Path]]:
    """``(label, folder)`` pairs searched for ``<folder>/<dataset>/``, first match wins."""
    roots = [("--dir", extra)] if extra is not None else []
    roots.append(("cache", cache_dir()))
    if (shared := shared_dir()) is not None:
        roots.append(("shared", shared))
    return roots


def _get(name: str) -> Dataset:
    if name not in DATASETS:
        from polymodal.cli import suggest

        known = ", ".join(sorted(DATASETS))
        raise KeyError(f"unknown dataset {name!r}{suggest(name, list(DATASETS))}; registered: {known}")
    return DATASETS[name]


def _present(folder: Path, ds: Dataset) -> bool:
    return all((folder / rel.rstrip("/")).exists() for rel in ds.files)


def locate(name: str, extra: Path | None = None) -> tuple[str, Path] | None:
    """``(label, folder)`` of the first root holding every file of dataset ``name``, or ``None``."""
    ds = _get(name)
    for label, root in search_roots(extra):
        if _present(root / name, ds):
            return label, root / name
    return None


def resolve_data_uri(uri: str, *, must_exist: bool = True) -> Path:
    """``data://<dataset>[/<file>]`` -> a local path (see the module docstring for the search order).

    Raises:
        DatasetMissing: the dataset is registered but not present (one line with the fetch command).
        KeyError: the dataset name is not registered (lists the registered names).
    """
    rest = uri[len(DATA_SCHEME) :].strip("/")
    name, _, rel = rest.partition("/")
    ds = _get(name)
    found = locate(name)
    if found is None:
        if not must_exist:
            return cache_dir() / name / rel
        looked = ", ".join(str(r / name) for _, r in search_roots())
        raise DatasetMissing(f"dataset {name!r} not present ({uri}; looked in {looked}): run `{ds.fetch_command}`")
    path = found[1] / rel if rel else found[1]
    if must_exist and not path.exists():
        raise FileNotFoundError(f"{uri}: dataset {name!r} has no file {rel!r} (in {found[1]})")
    return path


# ----------------------------------------------------------------------------- verification
def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tree_sha256(folder: Path) -> str:
    """sha256 over the lines ``"<sha256>  <relative posix path>\\n"`` of every file under ``folder``, sorted."""
    lines = "".join(
        f"{file_sha256(p)}  {p.relative_to(folder).as_posix()}\n" for p in sorted(folder.rglob("*")) if p.is_file()
    )
    return hashlib.sha256(lines.encode()).hexdigest()


def verify(name: str, folder: Path) -> list[str]:
    """Problems with ``folder`` as a copy of dataset ``name`` (empty: every file present and equal)."""
    ds = _get(name)
    problems = []
    for rel, expected in ds.files.items():
        path = folder / rel.rstrip("/")
        if rel.endswith("/"):
            if not path.is_dir():
                problems.append(f"{rel}: missing folder")
            elif (got := tree_sha256(path)) != expected:
                problems.append(f"{rel}: sha256 {got[:12]}... != expected {expected[:12]}...")
        elif not path.is_file():
            problems.append(f"{rel}: missing")
        elif (got := file_sha256(path)) != expected:
            problems.append(f"{rel}: sha256 {got[:12]}... != expected {expected[:12]}...")
    return problems


# ----------------------------------------------------------------------------- download
Progress = Callable[[int, int | None], None]


class LineProgress:
    """Progress of a long loop: a tqdm bar on a terminal, else one plain line every ``every_s`` seconds
    (and at the end), so a log file shows it too. Call it with ``(done, total)``.

    Args:
        label: what is progressing (``fetch stsb``, ``encode``).
        unit: ``"B"`` (shown in MB) or a count unit such as ``"item"``.
    """

    def __init__(self, label: str, every_s: float | None = None, unit: str = "B") -> None:
        self.label, self.unit = label, unit
        self.every_s = float(every_s if every_s is not None else os.environ.get("POLYMODAL_PROGRESS_SECONDS", 10))
        self.bar = None
        self._last = time.monotonic()
        self._start = self._last
        self.lines = 0
        if getattr(sys.stderr, "isatty", lambda: False)():
            with contextlib.suppress(ImportError):
                from tqdm.auto import tqdm

                self.bar = tqdm(desc=label, unit=unit, unit_scale=True, unit_divisor=1024 if unit == "B" else 1000)

    def _amount(self, n: int) -> str:
        return f"{n / 1e6:.1f}" if self.unit == "B" else str(n)

    def __call__(self, done: int, total: int | None) -> None:
        if self.bar is not None:
            self.bar.total = total
            self.bar.n = done
            self.bar.refresh()
            return
        now = time.monotonic()
        if now - self._last >= self.every_s or (total is not None and done >= total):
            self._last = now
            self.lines += 1
            pct = f" ({100 * done / total:.0f}%)" if total else ""
            size = self._amount(done) + (f"/{self._amount(total)}" if total else "")
            unit = "MB" if self.unit == "B" else f"{self.unit}s"
            rate = done / max(now - self._start, 1e-9)
            speed = f", {rate / 1e6:.1f} MB/s" if self.unit == "B" else f", {rate:.1f} {unit}/s"
            print(f"polymodal: {self.label}: {size} {unit}{pct}{speed}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _download(url: str, part: Path, progress: Progress | None, timeout: float = 60.0) -> None:
    """Download ``url`` to ``part``, continuing an existing partial file with ``Range: bytes=N-``."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - the user named this URL
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the partial file is already complete
            return
        raise OSError(f"download {url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, TimeoutError) as exc:
        raise OSError(f"download {url}: {getattr(exc, 'reason', exc)}") from None
    with response:
        resumed = response.status == 206
        length = response.headers.get("Content-Length")
        total = (int(length) + (have if resumed else 0)) if length and length.isdigit() else None
        mode = "ab" if resumed else "wb"
        done = have if resumed else 0
        with open(part, mode) as fh:
            try:
                while block := response.read(1 << 16):
                    fh.write(block)
                    done += len(block)
                    if progress:
                        progress(done, total)
            except (http.client.IncompleteRead, ConnectionError, TimeoutError) as exc:
                raise OSError(
                    f"download {url}: connection lost at {done} bytes ({exc}); run fetch again to resume"
                ) from None
        if total is not None and done != total:
            raise OSError(f"download {url}: connection closed at {done} of {total} bytes (run fetch again to resume)")


def _unpack(archive: Path, into: Path, name: str) -> Path:
    """Unpack ``archive`` safely into ``into``; returns the folder holding the dataset's files."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(into, filter="data")
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise ValueError(f"{archive.name}: corrupt or unsafe archive: {exc}") from None
    inner = into / name
    return inner if inner.is_dir() and not (into / next(iter(DATASETS[name].files)).rstrip("/")).exists() else into


def fetch(
    name: str,
    mirror: str,
    dest_root: Path | None = None,
    progress: Progress | None = None,
) -> Path:
    """Download ``<mirror>/<name>.tar.gz``, verify every file, install it as ``<dest_root>/<name>``.

    ``mirror`` is an ``http(s)://`` or ``file://`` base URL. A partial download survives in
    ``<dest_root>/.partial/`` and is resumed by the next call. Nothing is installed unless every
    expected file is present with its sha256; a failed check deletes the download.

    Raises:
        ValueError: checksum mismatch or a corrupt archive (one line naming the file).
        OSError: the download failed (resumable).
    """
    _get(name)
    dest_root = Path(dest_root) if dest_root is not None else cache_dir()
    target = dest_root / name
    partial_dir = dest_root / ".partial"
    partial_dir.mkdir(parents=True, exist_ok=True)
    part = partial_dir / f"{name}.tar.gz.part"
    url = mirror.rstrip("/") + f"/{name}.tar.gz"
    _download(url, part, progress)
    with tempfile.TemporaryDirectory(prefix=f".{name}.", dir=dest_root) as tmp:
        try:
            folder = _unpack(part, Path(tmp), name)
        except ValueError:
            part.unlink(missing_ok=True)
            raise
        problems = verify(name, folder)
        if problems:
            part.unlink(missing_ok=True)
            raise ValueError(f"{url}: {len(problems)} file(s) failed verification, nothing installed: {problems[0]}")
        old = None
        if target.exists():
            old = dest_root / f".{name}.old"
            shutil.rmtree(old, ignore_errors=True)
            target.rename(old)
        folder.rename(target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    part.unlink(missing_ok=True)
    return target
