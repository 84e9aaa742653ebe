"""The model card's figures: ROC, precision-recall and calibration curves of the candidate with the
champion's on the same test flights (scikit-learn displays), the permutation importance, and the
links the card makes to them; and the champion's probabilities passed from the evaluation."""

import re

import numpy as np
import pytest

from assets.deployment.logic import (
    CALIBRATION_PLOT,
    IMPORTANCE_PLOT,
    PRECISION_RECALL_PLOT,
    ROC_PLOT,
    model_card,
    plots,
)
from assets.evaluation.logic import SCORES_ARTIFACT, Evaluation, GatePolicy, ScoredTestDays, decide, metrics
from resources.records import ModelRecord

CURVES = (ROC_PLOT, PRECISION_RECALL_PLOT, CALIBRATION_PLOT)
ROWS = 3000


def _scored(seed: int = 0):
    """Outcomes with a minority of late flights, a better candidate and a worse champion."""
    rng = np.random.default_rng(seed)
    y = (rng.random(ROWS) < 0.2).astype(int)
    signal = y + rng.normal(0, 1, ROWS)
    candidate = 1 / (1 + np.exp(-(1.6 * signal - 2.2)))
    champion = 1 / (1 + np.exp(-(0.9 * (signal + rng.normal(0, 0.8, ROWS)) - 1.8)))
    return y, candidate, champion


def _evaluation(y, p_candidate, p_champion=None, scores_artifact=SCORES_ARTIFACT) -> Evaluation:
    scored = {"candidate": metrics(y, p_candidate, 0.3)}
    if p_champion is not None:
        scored["champion"] = metrics(y, p_champion, 0.25)
    scored["baseline"] = metrics(y, np.full(len(y), y.mean()), 0.3)
    importance = [{"feature": f"feature_{i}", "candidate": 0.02 / (i + 1), "candidate_std": 0.002,
                   **({"champion": 0.015 / (i + 1), "champion_std": 0.002} if p_champion is not None else {})}
                  for i in range(20)]
    return Evaluation(candidate_version="3", champion_version="2" if p_champion is not None else None,
                      test_days=["2013-05-12"], metrics=scored,
                      verdict=decide(scored["candidate"], scored.get("champion"), scored["baseline"], GatePolicy()),
                      importance=importance, scores_artifact=scores_artifact)


def _curve_lines(plot) -> list[str]:
    """Labels of the lines on the figure's first axes that are a model's curve (not the chance
    level, the reference diagonal or an operating point)."""
    labels = [line.get_label() for line in plot.figure.axes[0].get_lines()]
    return [label for label in labels if re.match(r"(candidate|champion) v\d", label)]


def _is_png(path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_each_curve_has_the_champion_beside_the_candidate_on_the_same_flights(tmp_path):
    from sklearn.metrics import average_precision_score, roc_auc_score

    y, p_candidate, p_champion = _scored()
    evaluation = _evaluation(y, p_candidate, p_champion)
    drawn = {p.path.name: p for p in plots(evaluation, ScoredTestDays.of(y, p_candidate, p_champion), tmp_path)}
    assert set(drawn) == {*CURVES, IMPORTANCE_PLOT}
    for name in CURVES:
        plot = drawn[name]
        assert plot.path == tmp_path / name and _is_png(plot.path), name
        assert set(plot.drawn) == {"candidate", "champion"}, name
        lines = _curve_lines(plot)
        assert len(lines) == 2 and lines[0].startswith("candidate v3") and lines[1].startswith("champion v2"), (name, lines)
        assert "champion v2" in plot.figure.axes[0].get_title(), name
    # each curve is its own model's probabilities on the same flights
    roc, pr = drawn[ROC_PLOT].drawn, drawn[PRECISION_RECALL_PLOT].drawn
    assert roc["candidate"].roc_auc == pytest.approx(roc_auc_score(y, p_candidate), abs=1e-5)
    assert roc["champion"].roc_auc == pytest.approx(roc_auc_score(y, p_champion), abs=1e-5)
    assert roc["candidate"].roc_auc > roc["champion"].roc_auc
    assert pr["champion"].average_precision == pytest.approx(average_precision_score(y, p_champion), abs=1e-5)
    calibration = drawn[CALIBRATION_PLOT].drawn
    assert len(calibration["candidate"].prob_true) <= 10 and not np.allclose(
        calibration["candidate"].prob_pred[:3], calibration["champion"].prob_pred[:3])
    # the importance plot: two bars per feature, the top 15
    bars = drawn[IMPORTANCE_PLOT].drawn
    assert set(bars) == {"candidate", "champion"} and len(bars["candidate"]) == len(bars["champion"]) == 15


def test_without_a_champion_the_candidate_is_drawn_alone_and_the_figure_says_so(tmp_path):
    y, p_candidate, _ = _scored()
    evaluation = _evaluation(y, p_candidate)
    drawn = {p.path.name: p for p in plots(evaluation, ScoredTestDays.of(y, p_candidate), tmp_path)}
    assert set(drawn) == {*CURVES, IMPORTANCE_PLOT}
    for name, plot in drawn.items():
        assert _is_png(plot.path) and set(plot.drawn) == {"candidate"}, name
        assert "no champion yet" in plot.figure.axes[0].get_title(), name
        if name in CURVES:
            assert [label.split(" (")[0] for label in _curve_lines(plot)] == ["candidate v3"], name


def test_the_card_links_every_figure_it_is_logged_with(tmp_path):
    y, p_candidate, p_champion = _scored()
    evaluation = _evaluation(y, p_candidate, p_champion)
    written = {p.path.name for p in plots(evaluation, ScoredTestDays.of(y, p_candidate, p_champion), tmp_path)}
    card = model_card(_record(), evaluation, "deployed as champion", "dagster-run")
    linked = set(re.findall(r"!\[[^]]+\]\(([^)]+)\)", card))
    assert linked == written == {*CURVES, IMPORTANCE_PLOT}
    assert "champion v2 it is judged against" in card and SCORES_ARTIFACT in card

    # an evaluation recorded before its scores were kept: no curve drawn, none linked, the card says why
    old = _evaluation(y, p_candidate, p_champion, scores_artifact="")
    card = model_card(_record(), old, "deployed as champion", "dagster-run")
    assert set(re.findall(r"!\[[^]]+\]\(([^)]+)\)", card)) == {IMPORTANCE_PLOT}
    assert "before the test scores were kept" in card


def test_old_evaluations_draw_only_the_importance(tmp_path):
    y, p_candidate, p_champion = _scored()
    old = _evaluation(y, p_candidate, p_champion, scores_artifact="")
    assert [p.path.name for p in plots(old, None, tmp_path)] == [IMPORTANCE_PLOT]
    assert Evaluation.from_json({k: v for k, v in old.as_json().items() if k != "scores_artifact"}).scores_artifact == ""


def test_the_scores_survive_their_json_record():
    y, p_candidate, p_champion = _scored()
    import json

    for scores in (ScoredTestDays.of(y, p_candidate, p_champion), ScoredTestDays.of(y, p_candidate)):
        again = ScoredTestDays.from_json(json.loads(json.dumps(scores.as_json())))
        assert again == scores and len(again.y) == ROWS
        np.testing.assert_allclose(again.candidate, p_candidate, atol=1e-6)
    assert ScoredTestDays.of(y, p_candidate).champion is None


def test_evaluate_hands_over_the_champions_probabilities_on_the_candidates_test_days():
    from assets.evaluation.logic import evaluate
    from assets.training.logic import LABEL, ModelParams, fit
    from served_model.features import model_input
    from tests.support import feature_days, training_set_of

    days = [f"2013-05-{d:02d}" for d in range(1, 9)]
    ts = training_set_of(feature_days(days), days)
    candidate, champion = fit(ts, ModelParams(max_iter=30)), fit(ts, ModelParams(max_iter=5, learning_rate=0.05))
    test = ts.split("test")
    evaluation, scores = evaluate(ts, "3", candidate, 0.3, "2", champion, 0.3, GatePolicy(), importance=False)
    assert evaluation.scores_artifact == SCORES_ARTIFACT
    assert scores.y == test[LABEL].astype(int).tolist()
    np.testing.assert_allclose(scores.candidate, candidate.predict_proba(model_input(test))[:, 1], atol=1e-6)
    assert scores.champion is not None and len(scores.champion) == len(test)
    np.testing.assert_allclose(scores.champion, champion.predict_proba(model_input(test))[:, 1], atol=1e-6)
    assert not np.allclose(scores.candidate, scores.champion)
    _, alone = evaluate(ts, "1", candidate, 0.3, None, None, 0.5, GatePolicy(), importance=False)
    assert alone.champion is None and alone.candidate == scores.candidate


def _record() -> ModelRecord:
    from resources.records import BuildInfo, RetrainTrigger, TrainingWindow

    days = [f"2013-05-{d:02d}" for d in range(1, 13)]
    window = TrainingWindow({"train": days[:8], "validation": days[8:10], "test": days[10:]})
    return ModelRecord(name="flight_delay_classifier", version="3", run_id="run-3", aliases=(), threshold=0.3, window=window,
                       trigger=RetrainTrigger("manual"), build=BuildInfo("r", "retrain_job", "abc", "def", "served_model"),
                       verdict=None, evaluation_roc_auc=None, model_params={"calibration": "isotonic"})
