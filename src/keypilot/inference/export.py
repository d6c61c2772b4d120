"""``keypilot export``: a trained run -> ONNX graphs (+ INT8), tokenizer and ``manifest.json``.

The model is cut where the predictor's work changes frequency (``docs/export.md``):

- ``screen.onnx`` - once per screenshot: backbone on the screen, SAM-Lite masks, boxes, the
  four ROI crops through the backbone again -> ``global_feat [1, d]``, ``roi_feats [1, 4, d]``
  (the cacheable visual tokens);
- ``keystroke.onnx`` - once per keystroke: text encoder, personality, fusion, task router,
  layout router with hysteresis, MoE router -> task/layout/expert probabilities and the
  decoder's conditioning ``prefix = [h_t, e_task, e_layout] [1, 3, d]``. The text encoder's
  token embedding is not in the graph: it is ``keystroke.tokens.npy`` beside it (INT8:
  ``keystroke.int8.tokens.npy`` + ``.scale.npy``), whose rows the predictor reads from disk
  (``keypilot.inference.token_table``), and the graph takes them as ``token_emb``. When the
  text encoder reads the decoder's table, the INT8 export has no table of its own: the rows
  are columns of the decode head's matrix (the manifest's ``token_table`` entry);
- ``expert_<LANG>.onnx`` - one per language expert, run only for the active (top-1 or
  top-2) experts of this keystroke: ``prefix``, embeddings of the previous tokens -> the
  expert's output at the last position ``[B, d]``;
- ``decode_head.onnx`` - the tied vocabulary head and one beam-search step: mixed expert
  output, log-prob mask, beam scores -> the best ``K`` (score, beam * V + token) of the
  flattened beam x vocabulary and the embeddings of those tokens (so the vocabulary matrix
  is stored once, and the next step's inputs come out of this one).

A traced MoE would bake in whichever experts the example input activated, and a dense one
pays for all five at every beam step, hence one graph per expert with the routing done by
the caller, exactly as ``LanguageMoE.forward`` does it.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from keypilot.bpe import save_compact
from keypilot.inference.candidates import load_prior_weight
from keypilot.inference.predictor import load_model
from keypilot.inference.token_table import save_table
from keypilot.run_folder import MANIFEST_FILE, PRIORS_DIR, TOKENIZER_FILE
from keypilot.labels import EXPERTS, LAYOUTS, TASKS
from keypilot.models.keypilot_model import KeyPilotModel
from keypilot.models.layers import TransformerBlock
from keypilot.models.moe import expert_weights
from keypilot.models.routers import apply_hysteresis
from keypilot.tokenizer import KeyPilotTokenizer

OPSET = 17


def top_k(model_cfg: dict[str, Any]) -> int:
    """How many flattened (beam, token) scores the head returns: the suggestion's beam width (the
    only beam search left: corrections and completions are ranked from the first token's logits)."""
    return model_cfg["decoder"]["beam_width"]


def graph_spec(file: str, inputs: list[str], outputs: list[str], dynamic: dict[str, dict[int, str]]) -> dict[str, Any]:
    """A graph's manifest entry (input/output names and dynamic axes; shapes are added from the file)."""
    return {"file": file, "inputs": inputs, "outputs": outputs, "dynamic": dynamic}


class ScreenGraph(nn.Module):
    """Letterboxed screenshot ``[1, 3, H, W]`` -> ``global_feat [1, d]``, ``roi_feats [1, 4, d]``."""

    def __init__(self, model: KeyPilotModel) -> None:
        super().__init__()
        self.encoder = model.encoder

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        screen = self.encoder.encode_screen(image)
        return screen["global_feat"], screen["roi_feats"]


class KeystrokeGraph(nn.Module):
    """Visual tokens + context embeddings + user + previous layout -> routing outputs and the decoder's conditioning.

    ``KeyPilotModel.encode_keystroke`` in eval mode with a known previous layout, without its
    first decoder step, plus what the predictor decodes under: for each task (TASKS order)
    the prefix ``[h_t, codebook[task], e_layout]`` and the active experts' weights, with the
    layout shown (``layout_override`` >= 0 pins it, as ``Predictor.predict(layout=...)``).
    """

    def __init__(self, model: KeyPilotModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, global_feat: Tensor, roi_feats: Tensor, token_emb: Tensor, attention_mask: Tensor,
                user_id: Tensor, prev_layout: Tensor, layout_override: Tensor,
                prior_features: Tensor | None = None) -> tuple[Tensor, ...]:
        m, router, moe = self.model, self.model.layout_router, self.model.decoder.moe
        enc = m.encoder
        # encoder.encode_keystroke from the context's token embeddings (the rows of the table for its ids)
        text_feat = enc.text_encoder.encode(token_emb, attention_mask)
        h_t = enc.fusion(global_feat, roi_feats, text_feat, enc.personality(user_id))
        _, task_probs, e_task = m.task_router(h_t, prior_features)
        layout_logits = router(h_t, prev_layout, prior_features)
        layout_next, _ = apply_hysteresis(layout_logits, prev_layout, router.hysteresis_bias, router.switch_threshold)
        onehot = F.one_hot(layout_next, len(LAYOUTS)).to(h_t.dtype)
        e_layout = onehot @ router.codebook
        _, expert_probs = moe.route(h_t, e_task, e_layout, onehot)

        shown = torch.where(layout_override >= 0, layout_override, layout_next)
        shown_onehot = F.one_hot(shown, len(LAYOUTS)).to(h_t.dtype).expand(len(TASKS), -1)
        task_h = h_t.expand(len(TASKS), -1)
        shown_e_layout = shown_onehot @ router.codebook
        _, task_expert_probs = moe.route(task_h, m.task_router.codebook, shown_e_layout, shown_onehot)
        cond_weights = expert_weights(task_expert_probs, moe.top1_threshold)
        cond_prefix = torch.stack([task_h, m.task_router.codebook, shown_e_layout], dim=1)
        layout_probs = torch.softmax(layout_logits, dim=-1)
        return task_probs, layout_logits, layout_probs, shown, expert_probs, cond_prefix, cond_weights


class ExpertGraph(nn.Module):
    """One language expert at the last decoder position.

    ``prefix [B, 3, d]``, ``prev_emb [B, k, d]`` (token embeddings of the previous tokens) ->
    ``y [B, d]``, the expert's output at position ``2 + k``. The expert is one causal
    transformer layer, so only the last position's query and MLP are needed (keys and values
    still cover every position); this is ``TransformerBlock.forward`` evaluated at one row.
    """

    def __init__(self, model: KeyPilotModel, expert: TransformerBlock) -> None:
        super().__init__()
        self.pos_emb = model.decoder.pos_emb
        self.block = expert

    def forward(self, prefix: Tensor, prev_emb: Tensor) -> Tensor:
        x = torch.cat([prefix, prev_emb], dim=1)
        x = x + self.pos_emb[: x.shape[1]]
        b = self.block
        normed = b.norm1(x)
        last = x[:, -1:] + b.attn(normed[:, -1:], context=normed)
        return (last + b.mlp(b.norm2(last)))[:, 0]


class DecodeHeadGraph(nn.Module):
    """One beam step: ``z [B, d]`` (mixed expert output), ``token_bias [B, V]`` (0 allowed,
    -inf banned), ``beam_scores [B]`` -> ``top_scores [K]``, ``top_index [K]`` (``beam * V + token``),
    ``top_emb [K, d]`` (token embeddings for the next step), ``logits [B, V]``."""

    def __init__(self, model: KeyPilotModel) -> None:
        super().__init__()
        self.decoder = model.decoder
        self.k = top_k(model.config["model"])

    def forward(self, z: Tensor, token_bias: Tensor, beam_scores: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        d = self.decoder
        # Both the product and the look-up read the transposed table, so the graph (and its
        # INT8 version) stores the vocabulary matrix once.
        table_t = d.token_emb.weight.T
        logits = d.norm(z) @ table_t + d.head_bias
        scores = torch.log_softmax(logits, dim=-1) + token_bias + beam_scores[:, None]
        top_scores, top_index = scores.flatten().topk(self.k)
        top_emb = table_t[:, top_index % table_t.shape[1]].T
        return top_scores, top_index, top_emb, logits


def text_token_table(model: KeyPilotModel) -> np.ndarray:
    """The text encoder's token embedding ``[V, width]`` float32, the keystroke graph's ``token_emb``
    rows (``width`` is d_model when the encoder reads the decoder's table)."""
    return model.encoder.text_encoder.token_emb.weight.detach().float().numpy()


def shared_table_spec(head_path: Path) -> dict[str, Any]:
    """Where the INT8 decode head at ``head_path`` keeps its vocabulary matrix ``[d, V]``: the
    manifest's ``token_table`` entry that ``token_table.SharedTable`` reads the context's rows from.

    The matrix is the int8 input of the head's ``Gather`` (the look-up of the chosen tokens),
    dequantized by the ``DequantizeLinear`` after it with a per-tensor scale and zero point.
    """
    model = onnx.load(str(head_path), load_external_data=False)
    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    consumers = {name: node for node in graph.node for name in node.input}
    for node in graph.node:
        axis = next((attr.i for attr in node.attribute if attr.name == "axis"), 0)
        table = initializers.get(node.input[0]) if node.op_type == "Gather" and axis == 1 else None
        dequantize = consumers.get(node.output[0])
        if table is None or dequantize is None or dequantize.op_type != "DequantizeLinear" or len(table.dims) != 2:
            continue
        scale, zero_point = (onnx.numpy_helper.to_array(initializers[name]) for name in dequantize.input[1:3])
        location = {entry.key: entry.value for entry in table.external_data}
        if table.data_type != onnx.TensorProto.INT8 or "location" not in location or scale.size != 1:
            break
        return {"initializer": table.name, "file": location["location"], "offset": int(location.get("offset", 0)),
                "shape": list(table.dims), "scale": float(scale), "zero_point": int(zero_point)}
    raise ValueError(f"{head_path}: no per-tensor int8 vocabulary matrix in external data behind a Gather; "
                     "the INT8 head is not laid out as the shared token table expects")


def _export(module: nn.Module, args: tuple[Tensor, ...], path: Path, spec: dict[str, Any]) -> None:
    """Export ``module`` with the names of ``spec``, then record the graph's shapes and dtypes in it."""
    with warnings.catch_warnings():
        # The tracer flags every shape read as a constant; the shapes that must stay dynamic
        # are declared in ``dynamic_axes`` and the parity check tests the rest.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter (no onnxscript here)
        torch.onnx.export(module, args, str(path), dynamo=False, opset_version=OPSET, input_names=spec["inputs"],
                          output_names=spec["outputs"], dynamic_axes=spec["dynamic"], do_constant_folding=True)
    graph = onnx.load(str(path)).graph

    def describe(values: Any) -> dict[str, Any]:
        return {v.name: {"shape": [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim],
                         "dtype": onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type).name} for v in values}

    spec["input_shapes"], spec["output_shapes"] = describe(graph.input), describe(graph.output)


def export_fp32(model: KeyPilotModel, out: Path) -> dict[str, dict[str, Any]]:
    """Write the FP32 graphs of ``model`` (eval mode) to ``out``; returns their manifest entries."""
    model = model.eval()
    cfg = model.config["model"]
    d, vocab = cfg["d_model"], cfg["vocab_size"]
    image = torch.rand(1, 3, cfg["image_height"], cfg["image_width"])
    graphs: dict[str, dict[str, Any]] = {}
    with torch.no_grad():
        global_feat, roi_feats = ScreenGraph(model).eval()(image)
        spec = graph_spec("screen.onnx", ["image"], ["global_feat", "roi_feats"], {})
        _export(ScreenGraph(model).eval(), (image,), out / spec["file"], spec)
        graphs["screen"] = spec

        ids = torch.randint(0, vocab, (1, 8))
        token_emb = model.encoder.text_encoder.token_emb(ids)
        args = (global_feat, roi_feats, token_emb, torch.ones_like(ids), torch.tensor([-1]), torch.tensor([0]), torch.tensor([-1]))
        inputs = ["global_feat", "roi_feats", "token_emb", "attention_mask", "user_id", "prev_layout", "layout_override"]
        if cfg.get("prior_features", 0):
            args += (torch.zeros(1, cfg["prior_features"]),)
            inputs.append("prior_features")
        spec = graph_spec("keystroke.onnx", inputs,
                          ["task_probs", "layout_logits", "layout_probs", "layout_shown", "expert_probs", "cond_prefix", "cond_weights"],
                          {"token_emb": {1: "tokens"}, "attention_mask": {1: "tokens"}})
        _export(KeystrokeGraph(model).eval(), args, out / spec["file"], spec)
        save_table(text_token_table(model), out / spec["file"], int8=False)
        graphs["keystroke"] = spec
        prefix = KeystrokeGraph(model).eval()(*args)[-2][:1]

        beam = {0: "beam"}
        prev_emb = torch.randn(2, 2, d) * 0.02
        for name, expert in zip(EXPERTS, model.decoder.moe.experts, strict=True):
            spec = graph_spec(f"expert_{name}.onnx", ["prefix", "prev_emb"], ["y"],
                              {"prefix": beam, "prev_emb": {0: "beam", 1: "prev_tokens"}, "y": beam})
            _export(ExpertGraph(model, expert).eval(), (prefix.expand(2, -1, -1), prev_emb), out / spec["file"], spec)
            graphs[f"expert_{name}"] = spec

        spec = graph_spec("decode_head.onnx", ["z", "token_bias", "beam_scores"], ["top_scores", "top_index", "top_emb", "logits"],
                          {"z": beam, "token_bias": {0: "bias_rows"}, "beam_scores": beam, "logits": beam})
        args = (torch.randn(2, d), torch.zeros(2, vocab), torch.zeros(2))
        _export(DecodeHeadGraph(model).eval(), args, out / spec["file"], spec)
        graphs["decode_head"] = spec
    return graphs


def export_run(run: Path, out: Path, int8: bool = False, calib_images: int = 32, calib_data: Path | None = None,
               parity: bool = True) -> dict[str, Any]:
    """Export ``run`` to ``out`` (FP32 always, INT8 beside it with ``int8``); with ``parity``, print
    and return the parity report against torch on real screens of ``calib_data`` (else generated ones)."""
    from keypilot.inference.parity import calibration_screens, parity_report, print_parity
    from keypilot.inference.quantize import quantize_linear_graph, quantize_screen_encoder

    run, out = Path(run), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = load_model(run)  # with the layout offsets: the keystroke graph decides with them
    cfg = model.config["model"]
    graphs = export_fp32(model, out)
    shutil.copyfile(run / TOKENIZER_FILE, out / TOKENIZER_FILE)
    if (run / PRIORS_DIR).is_dir():
        shutil.copytree(run / PRIORS_DIR, out / PRIORS_DIR, dirs_exist_ok=True)
    tokenizer = KeyPilotTokenizer.from_file(out / TOKENIZER_FILE)
    try:
        compact = save_compact(out / TOKENIZER_FILE, out).name
    except ValueError as exc:  # the predictor reads tokenizer.json with `tokenizers` instead
        print(f"export: no compact tokenizer: {exc}")
        compact = None
    manifest: dict[str, Any] = {
        "format": 1,
        "opset": OPSET,
        "dtype": "float32",
        "graphs": graphs,
        "config": model.config,
        "labels": {"tasks": list(TASKS), "layouts": list(LAYOUTS), "experts": list(EXPERTS)},
        "eos_id": tokenizer.eos_id,
        "top_k": top_k(cfg),
        "tokenizer": TOKENIZER_FILE,
        "tokenizer_bpe": compact,  # keypilot.bpe: the predictor's tokenizer without `tokenizers`
        # beta of the fusion with the priors: fitted on the validation split when the run says so
        "prior_weight": load_prior_weight(run, float(model.decoder.prior_weight.detach())),
        "suggestion_weight": load_prior_weight(run, float(model.decoder.prior_weight.detach()), "suggestion_weight"),
        "priors": PRIORS_DIR if (out / PRIORS_DIR).is_dir() else None,
    }
    if int8:
        screens = calibration_screens(calib_data or run, calib_images, cfg["image_height"], cfg["image_width"])
        int8_graphs = {}
        shared = bool(cfg["text_encoder"].get("shared_embedding"))
        for name, spec in graphs.items():
            target = spec["file"].replace(".onnx", ".int8.onnx")
            if name == "screen":
                quantize_screen_encoder(out / spec["file"], out / target, screens, cfg["backbone"].get("attention", "softmax"))
            else:
                quantize_linear_graph(out / spec["file"], out / target)
            if name == "keystroke" and not shared:
                save_table(text_token_table(model), out / target, int8=True)
            int8_graphs[name] = {**spec, "file": target}
        if shared:  # the context's rows are columns of the head's matrix: one copy of the table
            int8_graphs["keystroke"]["token_table"] = shared_table_spec(out / int8_graphs["decode_head"]["file"])
        manifest["int8_graphs"] = int8_graphs
        static = "every op" if cfg["backbone"].get("attention", "softmax") == "linear" else "convolutions (MatMul dynamic)"
        manifest["int8_method"] = {"screen": f"static QDQ of {static}, per-channel, uint8 activations / int8 weights, "
                                             f"MinMax calibration on {len(screens)} letterboxed screenshots",
                                   "other": "dynamic, int8 weights (MatMul, Gather)"}
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
    if not parity:
        return {}
    report = parity_report(model, out, calib_data or run, int8=int8)
    print_parity(report)
    return report
