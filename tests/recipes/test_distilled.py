"""The distilled recipe: cross-encoder teacher, teacher scoring, bi-encoder student (DSE)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

import polymodal
from polymodal.cli import main
from polymodal.plugins.text.cross_encoder import CrossEncoder, PairTextProcessor
from polymodal.plugins.text.encoder import TextEncoder
from polymodal.poolers import ClsPooler
from tests.helpers import TINY_BERT


def _tiny_cross_encoder() -> CrossEncoder:
    torch.manual_seed(0)
    return CrossEncoder(TextEncoder(model={**TINY_BERT, "type_vocab_size": 2}, tokenizer="bytes", max_length=64))


def test_pair_processor_template_segments_and_truncation():
    enc = TextEncoder(model=TINY_BERT, tokenizer="bytes", max_length=12)
    proc = PairTextProcessor(enc.processor.tokenizer, 12, enc.processor.pad_id)
    out = proc([("ab", "xyz"), ("a", "b")])
    ids, types, mask = out["input_ids"], out["token_type_ids"], out["attention_mask"]
    # [CLS] a b [SEP] x y z [SEP]: CLS=2, SEP=3, segment 0 then 1
    assert ids[0, 0] == 2 and ids[0, 3] == 3 and ids[0, 7] == 3
    assert types[0].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert mask[1].tolist() == [1, 1, 1, 1, 1, 0, 0, 0]
    long = proc([("a" * 40, "b" * 3)])
    assert long["input_ids"].shape[1] == 12 and proc.truncated == 1  # the longer text lost tokens
    assert (long["token_type_ids"][0] == 1).sum() == 4  # "bbb" [SEP] kept whole
    with pytest.raises(ValueError, match="pair of strings"):
        proc([("only one",)])


def test_cross_encoder_predict_order_save_load(tmp_path):
    model = _tiny_cross_encoder()
    pairs = [("a cat sits", "a cat is sitting"), ("x", "a much longer second sentence here"), ("b", "c")]
    scores = model.predict(pairs, batch_size=2)
    assert scores.shape == (3,) and ((scores > 0) & (scores < 1)).all()
    one_by_one = np.array([model.predict([p])[0] for p in pairs])
    np.testing.assert_allclose(scores, one_by_one, atol=1e-5)  # batching/sorting keeps the order
    model.save(tmp_path / "ce")
    again = polymodal.load(tmp_path / "ce")
    assert isinstance(again, CrossEncoder) and isinstance(again.pooler, ClsPooler)
    np.testing.assert_allclose(again.predict(pairs), scores, atol=1e-6)
    swapped = model.predict([(b, a) for a, b in pairs])
    assert not np.allclose(swapped, scores)  # segment ids matter: the pair is not bag-of-two
    with pytest.raises(TypeError, match="scores pairs"):
        again.encode(["a"])
    with pytest.raises(TypeError, match="list of pairs"):
        model.predict(("a", "b"))
    with pytest.raises(ValueError, match="pair 1: expected a pair of strings"):
        model.predict([("a", "b"), ("a", None)])


def test_embedding_model_folder_refuses_foreign_model_class(tmp_path):
    import json

    from polymodal.model import EmbeddingModel

    _tiny_cross_encoder().save(tmp_path / "ce")
    cfg = json.loads((tmp_path / "ce" / "polymodal.json").read_text())
    cfg["model_class"] = "os.system"
    (tmp_path / "ce" / "polymodal.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="'model_class' names 'os.system', which is not a registered model class"):
        EmbeddingModel.from_folder(tmp_path / "ce")


def test_tiny_teacher_score_student_chain(tmp_path, capsys):
    from polymodal.recipes.distilled.score import main as score

    teacher = main(["fit", "--config", "recipes/distilled/tiny.yaml", f"--trainer.default_root_dir={tmp_path / 't'}"])
    assert teacher.trainer.global_step == 3 and math.isfinite(float(teacher.trainer.callback_metrics["train/loss"]))
    assert -1 <= float(teacher.trainer.callback_metrics["val/spearman"]) <= 1
    ce = polymodal.load(tmp_path / "t" / "model")
    assert isinstance(ce, CrossEncoder)

    sample = "package://sbert/data/stsb_train_sample.tsv.gz"
    out = tmp_path / "scores.tsv"
    assert score(["--teacher", str(tmp_path / "t" / "model"), "--input", sample, "--output", str(out)]) == 0
    assert "wrote 600 teacher-scored pairs" in capsys.readouterr().out
    table = pd.read_csv(out, sep="\t")
    assert list(table.columns) == ["sentence1", "sentence2", "teacher_score", "score", "source"]
    head = list(zip(table.sentence1[:5], table.sentence2[:5]))
    np.testing.assert_allclose(table.teacher_score[:5], ce.predict(head), atol=1e-5)

    student = main(
        [
            "fit",
            "--config",
            "recipes/distilled/tiny_student.yaml",
            f"--data.train={out}",
            f"--trainer.default_root_dir={tmp_path / 's'}",
        ]
    )
    assert student.trainer.global_step == 3
    assert -1 <= float(student.trainer.callback_metrics["val/spearman"]) <= 1  # val uses the gold score column
    assert polymodal.load(tmp_path / "s" / "model").encode(["a"]).shape == (1, 32)


def test_score_rejects_a_bi_encoder_and_bad_rows(tmp_path):
    from polymodal.model import EmbeddingModel
    from polymodal.recipes.distilled.score import main as score
    from tests.helpers import tiny_text_encoder

    EmbeddingModel(tiny_text_encoder()).save(tmp_path / "bi")
    sample = "package://sbert/data/stsb_train_sample.tsv.gz"
    with pytest.raises(TypeError, match="not a cross-encoder"):
        score(["--teacher", str(tmp_path / "bi"), "--input", sample, "--output", str(tmp_path / "o.tsv")])
    _tiny_cross_encoder().save(tmp_path / "ce")
    pd.DataFrame({"sentence1": ["a", None], "sentence2": ["b", "c"], "score": [1.0, 2.0]}).to_csv(
        tmp_path / "bad.csv", index=False
    )
    with pytest.raises(ValueError, match=r"bad\.csv: row 2, column 'sentence1': expected text"):
        score(
            [
                "--teacher",
                str(tmp_path / "ce"),
                "--input",
                str(tmp_path / "bad.csv"),
                "--output",
                str(tmp_path / "o.tsv"),
            ]
        )
    assert not (tmp_path / "o.tsv").exists()


def test_tiny_snli_teacher_logits_head_student_and_compare(tmp_path, capsys):
    """Pair classification DSE: 3-way cross-encoder -> its raw logits -> PairHead student (MSE on the logits)."""
    from polymodal.recipes.distilled.compare import main as compare
    from polymodal.recipes.distilled.score import main as score

    teacher = main(
        ["fit", "--config", "recipes/distilled/tiny_snli.yaml", f"--trainer.default_root_dir={tmp_path / 't'}"]
    )
    assert {"val/accuracy", "val/macro_f1"} <= set(teacher.trainer.callback_metrics)
    ce = polymodal.load(tmp_path / "t" / "model")
    assert isinstance(ce, CrossEncoder) and ce.num_labels == 3 and ce.activation == "softmax"
    sample = "package://pixel_linguist/data/snli_dev_sample.tsv.gz"
    out = tmp_path / "logits.tsv"
    args = ["--teacher", str(tmp_path / "t" / "model"), "--input", sample, "--columns", "premise,hypothesis,label"]
    assert score([*args, "--classes", "entailment,neutral,contradiction", "--output", str(out)]) == 0
    assert "teacher accuracy on the labelled input pairs" in capsys.readouterr().out
    table = pd.read_csv(out, sep="\t")
    logits = table[[f"teacher_logit_{k}" for k in range(3)]].to_numpy()
    probs = ce.predict(list(zip(table.sentence1[:4], table.sentence2[:4])))
    np.testing.assert_allclose(np.exp(logits[:4]) / np.exp(logits[:4]).sum(1, keepdims=True), probs, atol=1e-5)
    assert (table.teacher_label == np.array(["entailment", "neutral", "contradiction"])[logits.argmax(1)]).all()

    overrides = [f"--data.init_args.sources.{s}.init_args.path={out}" for s in ("train", "val")]
    student = main(
        [
            "fit",
            "--config",
            "recipes/distilled/tiny_student_head_snli.yaml",
            *overrides,
            f"--trainer.default_root_dir={tmp_path / 's'}",
        ]
    )
    assert student.trainer.global_step == 3 and "val/accuracy" in student.trainer.callback_metrics
    res = compare(
        [
            "--scored",
            str(out),
            "--test",
            str(out),
            "--cosine",
            str(tmp_path / "s" / "model"),
            "--head",
            str(tmp_path / "s" / "model"),
            "--head-checkpoint",
            str(tmp_path / "s" / "checkpoints" / "last.ckpt"),
        ]
    )
    assert res["teacher"]["accuracy"] == pytest.approx(float((table.teacher_label == table.label).mean()))
    assert set(res) == {"teacher", f"cosine:{tmp_path / 's' / 'model'}", "head"}


def test_tiny_head_student_on_sts_teacher_scores(tmp_path):
    """student_head.yaml's tiny twin: PairHead + HeadLoss(kind=soft) against score.py's teacher_score."""
    from polymodal.recipes.distilled.score import main as score

    main(["fit", "--config", "recipes/distilled/tiny.yaml", f"--trainer.default_root_dir={tmp_path / 't'}"])
    out = tmp_path / "scores.tsv"
    sample = "package://sbert/data/stsb_train_sample.tsv.gz"
    assert score(["--teacher", str(tmp_path / "t" / "model"), "--input", sample, "--output", str(out)]) == 0
    cli = main(
        [
            "fit",
            "--config",
            "recipes/distilled/tiny_student_head.yaml",
            f"--data.train={out}",
            f"--trainer.default_root_dir={tmp_path / 's'}",
        ]
    )
    assert cli.trainer.global_step == 3 and -1 <= float(cli.trainer.callback_metrics["val/spearman"]) <= 1
    assert cli.model.heads["score"].net[0].in_features == 4 * 32  # [u, v, |u-v|, u*v]


def test_cosine_thresholds_pick_the_best_cut():
    from polymodal.recipes.distilled.compare import cosine_thresholds, threshold_classes

    cos = np.array([0.9, 0.8, 0.5, 0.45, 0.1, 0.0])
    labels = np.array([0, 0, 1, 1, 2, 2])
    lo, hi = cosine_thresholds(cos, labels)
    assert (threshold_classes(cos, lo, hi) == labels).all()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("recipes/distilled/student_head.yaml", "PairHead"),
        ("recipes/distilled/student_head_snli.yaml", "teacher_logit_2"),
        ("recipes/distilled/student_snli.yaml", "teacher_prob_0"),
        ("recipes/distilled/teacher_snli.yaml", "num_classes: 3"),
    ],
)
def test_real_data_configs_parse(config, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--config", config, "--print_config"])
    assert exit_.value.code == 0 and message in capsys.readouterr().out
