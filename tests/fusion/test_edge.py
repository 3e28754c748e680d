"""Edge export: ONNX parity with PyTorch on real windows, int8 variants that run, the card's numbers, bad inputs."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from acquisition import SessionWriter, StreamSpec
from fusion.config import load_pretrain_config
from fusion.evaluate import load_run, retrieval
from fusion.model import pair_embedding
from fusion.train import pretrain

from .conftest import write_small_session

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from fusion.edge.build import export_model  # noqa: E402
from fusion.edge.export import EncoderGraph, export_graph, onnx_outputs, torch_outputs  # noqa: E402
from fusion.edge.quantize import choose_variant, preprocess, quantize_static_int8  # noqa: E402
from fusion.edge.runtime import EdgeModel, make_session  # noqa: E402
from fusion.edge.source import load_source, read_windows  # noqa: E402

SMALL = ["data.clip_frames=2", "data.image_size=16", "data.window_s=0.5", "data.stride_s=0.25",
         "optim.batch_size=4", "optim.warmup_steps=2", "model.hidden_dim=16", "model.embed_dim=8",
         "model.encoders.rgb.kwargs.width=4", "model.encoders.eeg.kwargs.kernel=8",
         "data.modalities=[rgb,eeg]", "optim.steps=3", "data.cache=false"]
FAST = {"threads": (1,), "repeats": 3}


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    """A tiny RGB+EEG run on a 6 s session, exported with int8 variants: (run, session, edge folder, config)."""
    folder = tmp_path_factory.mktemp("edge")
    session = write_small_session(folder / "a.h5", duration_s=6.0)
    run = folder / "r1"
    pretrain([session], load_pretrain_config("tiny", SMALL), run, progress=False)
    config = export_model(run, folder / "edge1", calibrate=[session], quantize="int8", **FAST)
    return run, session, folder / "edge1", config


def test_parity_with_pytorch_on_real_windows(edge):
    run, session, out, config = edge
    model = load_run(run)[0].eval()
    windows = read_windows(load_source(run), [session])
    edge_model = EdgeModel(out)
    with torch.no_grad():
        ref = model({m: torch.from_numpy(x) for m, x in windows.views.items()})
    fp32 = {m: "fp32" for m in edge_model.modalities}
    got = edge_model.embed(windows.views)
    assert sorted(got) == sorted(ref) and "rgb->eeg" in got
    for key, z in ref.items():
        m = key.split("->")[0]
        tol = 1e-5 if config["inputs"][m]["quantization"] == "fp32" else 0.2
        np.testing.assert_allclose(got[key], z.numpy(), atol=tol)
    for m in fp32:
        assert config["inputs"][m]["max_abs_diff_fp32_vs_torch"] < 1e-5
    # Wrong window shape: a clear error naming the expected shape.
    with pytest.raises(ValueError, match=r"eeg views must have shape \(batch, 3, 50\)"):
        edge_model.embed({"eeg": np.zeros((2, 3, 40), np.float32)})


def test_card_records_variants_latency_and_accuracy(edge):
    run, session, out, config = edge
    assert json.loads((out / "config.json").read_text()) == config
    card = (out / "README.md").read_text()
    for m, entry in config["inputs"].items():
        assert (out / entry["file"]).is_file() and entry["rate_hz"] == {"rgb": 30.0, "eeg": 100.0}[m]
        assert set(entry["variants"]) == {"fp32", "int8-static", "int8-dynamic"}
        medians = {}
        for variant, v in entry["variants"].items():
            lat = v["latency"]["1"]
            assert lat["repeats"] == 3 and lat["min_ms"] <= lat["median_ms"] <= lat["max_ms"]
            assert v["size_bytes"] > 1000
            medians[variant] = lat["median_ms"]
            assert f"{lat['median_ms']:.3f} [{lat['min_ms']:.3f}, {lat['max_ms']:.3f}]" in card
        assert (entry["quantization"], entry["reason"]) == choose_variant(medians)
        assert f"{entry['max_abs_diff_fp32_vs_torch']:.2e}" in card
    assert list(out.glob(".export-*")) == [] and sorted(p.name for p in out.glob("*.onnx")) == ["eeg.onnx", "rgb.onnx"]
    # The deployed R@1 in the card is what the edge model's embeddings give on the same windows.
    windows = read_windows(load_source(run), [session])
    z = EdgeModel(out).embed(windows.views)
    r1 = retrieval(pair_embedding(z, "rgb", "eeg"), pair_embedding(z, "eeg", "rgb"))["R@1"]
    assert config["accuracy"]["retrieval_r1"]["per_pair"]["RGB->EEG"]["deployed"] == pytest.approx(r1)
    assert config["accuracy"]["n_windows"] == len(windows) and "| RGB->EEG |" in card


def test_choose_variant_known_answers():
    assert choose_variant({"fp32": 1.0, "int8-static": 0.5, "int8-dynamic": 0.8})[0] == "int8-static"
    assert choose_variant({"fp32": 1.0, "int8-static": 0.99, "int8-dynamic": 2.0})[0] == "fp32"   # < 1.05x
    assert choose_variant({"fp32": 1.0})[0] == "fp32"
    variant, reason = choose_variant({"fp32": 2.0, "int8-dynamic": 1.0})
    assert variant == "int8-dynamic" and "2.00x" in reason


def test_static_int8_graph_runs_and_stays_close(edge, tmp_path):
    run, session, _, _ = edge
    source = load_source(run)
    x = read_windows(source, [session]).views["eeg"]
    graph = EncoderGraph(source.encoders.encoders["eeg"])
    fp32 = export_graph(graph, x, tmp_path / "eeg.onnx", "eeg")
    int8 = quantize_static_int8(preprocess(fp32, tmp_path / "pre.onnx"), tmp_path / "eeg.int8.onnx", x)
    import onnx

    ops = {n.op_type for n in onnx.load(str(int8)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    ref, got = torch_outputs(graph, x)[0], onnx_outputs(make_session(int8), x)[0]
    cosine = (ref * got).sum(1)   # both unit norm
    assert cosine.min() > 0.9 and not np.allclose(ref, got, atol=1e-6)   # quantized, yet the same embedding


def test_recognizer_head_export_and_uf1(edge, tmp_path):
    from fusion.recognition.head import RecognitionModel

    run, _, _, _ = edge
    model, config = load_run(run)
    model.eval()
    torch.manual_seed(0)
    rec = RecognitionModel(model, ["rgb", "eeg"], ["negative", "positive", "surprise"], "megc3",
                           config.data.model_dump(), anchor="apex").eval()
    rec.save_pretrained(tmp_path / "rec")
    fname = write_small_session(tmp_path / "labelled.h5", duration_s=6.0)
    texts = [f"{p}/{e}/micro" for e in ("fear", "happiness") for p in ("onset", "apex", "offset")]
    with SessionWriter.replace_derived(fname, [StreamSpec("Markers", "Markers", 1, "string", 0.0, "m")],
                                       derived_by="test") as new:
        new["Markers"].append([[t] for t in texts], [1.5, 1.7, 1.9, 3.5, 3.7, 3.9])
    card = export_model(tmp_path / "rec", tmp_path / "edge", calibrate=[fname], quantize="none", **FAST)
    assert card["head"]["classes"] == ["negative", "positive", "surprise"] and (tmp_path / "edge/head.onnx").is_file()
    assert card["head"]["max_abs_diff_fp32_vs_torch"] < 1e-5
    assert card["accuracy"]["recognition"]["n_clips"] == 2 and "pytorch" in card["accuracy"]["recognition"]["uf1"]
    windows = read_windows(load_source(tmp_path / "rec"), [fname])
    with torch.no_grad():
        ref = rec({**{m: torch.from_numpy(x) for m, x in windows.views.items()},
                   "available": {m: torch.ones(len(windows), dtype=torch.bool) for m in windows.views}}).numpy()
    np.testing.assert_allclose(EdgeModel(tmp_path / "edge").classify(windows.views), ref, atol=1e-4)
    assert "Recognition UF1 on 2 labelled expressions" in (tmp_path / "edge/README.md").read_text()


def test_bad_inputs_name_the_file(edge, tmp_path):
    run, session, out, _ = edge
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'nothing'} does not exist"):
        export_model(tmp_path / "nothing", tmp_path / "o", calibrate=[session], **FAST)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="is not a model folder"):
        export_model(tmp_path / "empty", tmp_path / "o", calibrate=[session], **FAST)
    newer = tmp_path / "newer"
    shutil.copytree(run, newer)
    cfg = json.loads((newer / "model/config.json").read_text())
    (newer / "model/config.json").write_text(json.dumps({**cfg, "format_version": 99}))
    with pytest.raises(ValueError, match=r"newer/model/config.json has format_version 99, newer than"):
        export_model(newer, tmp_path / "o", calibrate=[session], **FAST)
    no_eeg = write_small_session(tmp_path / "no_eeg.h5", with_eeg=False)
    with pytest.raises(ValueError, match=r"no_eeg.h5 has no \['eeg'\] stream, which the model's encoders need"):
        export_model(run, tmp_path / "o", calibrate=[session, no_eeg], **FAST)
    with pytest.raises(FileExistsError, match="--overwrite"):
        export_model(run, out, calibrate=[session], **FAST)
    with pytest.raises(FileExistsError, match="not an edge model folder"):
        export_model(run, run, calibrate=[session], overwrite=True, **FAST)
    edited = tmp_path / "edited"
    shutil.copytree(out, edited)
    cfg = json.loads((edited / "config.json").read_text())
    (edited / "config.json").write_text(json.dumps({**cfg, "format_version": 7}))
    with pytest.raises(ValueError, match="format_version 7; this emosync reads up to 1"):
        EdgeModel(edited)
    with pytest.raises(FileNotFoundError, match="is not an edge model folder"):
        EdgeModel(run)


def test_cli_shell_expanded_calibrate(edge, tmp_path):
    from emosync import app

    run, session, _, _ = edge
    second = shutil.copy(session, tmp_path / "b.h5")
    result = CliRunner().invoke(app, ["export-model", str(run), "--quantize", "none", "--calibrate", str(session),
                                      str(second), "--out", str(tmp_path / "e"), "--threads", "1", "--repeats", "3"])
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "e/config.json").read_text())
    assert config["calibration"]["sessions"] == [str(session), str(second)]
    assert all(e["quantization"] == "fp32" and set(e["variants"]) == {"fp32"} for e in config["inputs"].values())
    result = CliRunner().invoke(app, ["export-model", str(tmp_path / "nope"), "--calibrate", str(session),
                                      "--out", str(tmp_path / "f")])
    assert result.exit_code == 1 and "nope does not exist" in " ".join(result.output.split())
