"""Checkpoints: resolve a path, load it safely, and find each decoder layer's FFN.

A checkpoint is a Hugging Face folder (``*.safetensors``), a GGUF file (converted once to a
safetensors folder in a cache, then reloaded in well under a second), or, only with
``allow_pickle``, a folder of pickled ``pytorch_model*.bin`` files (read with
``torch.load(weights_only=True)``).  Remote code runs only with ``trust_remote_code``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sparsitylaws.errors import MeasureError

#: Where MLP modules are looked for (attribute names on a decoder layer).
MLP_NAMES = ("mlp", "feed_forward", "ffn")
#: Down projections, in order of preference: Llama/Mistral/Qwen/Gemma/MiniCPM, GPT-2,
#: GPT-NeoX, OPT (``fc2`` on the decoder layer itself), GPT-J (``fc_out``), others.
DOWN_NAMES = ("down_proj", "c_proj", "dense_4h_to_h", "fc2", "fc_out", "w2")
#: Attributes of a decoder layer or its MLP that mark a mixture-of-experts block.
MOE_NAMES = ("experts", "block_sparse_moe", "moe", "router")
#: Sub-models that are not the language model (vision towers, audio encoders).
NOT_LANGUAGE = ("vision", "visual", "image", "audio", "speech", "multi_modal_projector")
#: Activation modules applied to the gate (gated) or to the up projection (non-gated).
ACT_NAMES = ("act_fn", "act", "activation_fn", "activation")
GATE_NAMES = ("gate_proj", "w1")

CACHE_ENV = "SPARSITYLAWS_CACHE"


def cache_dir() -> Path:
    """Cache root for converted GGUF checkpoints (env ``SPARSITYLAWS_CACHE`` overrides)."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "sparsitylaws"


@dataclass(frozen=True)
class CheckpointRef:
    """A resolved checkpoint: what kind it is and where its files are."""

    path: Path
    kind: str  # "hf" | "gguf" | "pickle"
    gguf_file: Path | None = None

    @property
    def name(self) -> str:
        return str(self.path)


def resolve_checkpoint(path: str | os.PathLike, allow_pickle: bool = False) -> CheckpointRef:
    """Say what kind of checkpoint ``path`` is; refuse pickles without ``allow_pickle``."""
    p = Path(path)
    if not p.exists():
        raise MeasureError(f"{p}: checkpoint not found")
    if p.is_file():
        if p.suffix.lower() == ".gguf":
            return CheckpointRef(p, "gguf", p)
        raise MeasureError(f"{p}: not a checkpoint (expected a Hugging Face folder or a .gguf file)")
    if any(p.glob("*.safetensors")):
        return CheckpointRef(p, "hf")
    ggufs = sorted(p.glob("*.gguf"))
    if len(ggufs) == 1:
        return CheckpointRef(p, "gguf", ggufs[0])
    if len(ggufs) > 1:
        raise MeasureError(f"{p}: several .gguf files; name one of them as the checkpoint")
    pickles = sorted(p.glob("pytorch_model*.bin")) + sorted(p.glob("*.pt"))
    if pickles:
        if not allow_pickle:
            raise MeasureError(
                f"{p}: only pickled weights ({pickles[0].name}); pickles can run code when loaded, "
                "so they need --allow-pickle (then read with torch.load(weights_only=True))")
        return CheckpointRef(p, "pickle")
    raise MeasureError(
        f"{p}: no weights found (looked for *.safetensors, *.gguf, pytorch_model*.bin)")


def _needs_remote_code(folder: Path) -> bool:
    cfg = folder / "config.json"
    if not cfg.is_file():
        return False
    try:
        data = json.loads(cfg.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise MeasureError(f"{cfg}: unreadable config ({exc})") from exc
    return bool(data.get("auto_map"))


def gguf_to_folder(gguf: Path, cache: Path | None = None) -> Path:
    """Convert a GGUF file once into a safetensors folder in the cache; return the folder.

    The cache key covers the file's path, size and modification time and the transformers
    version, so a changed file is converted again.  The folder appears atomically.
    """
    import safetensors.torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    st = gguf.stat()
    key_src = f"{gguf.resolve()}|{st.st_size}|{st.st_mtime_ns}|{transformers.__version__}"
    key = hashlib.sha256(key_src.encode()).hexdigest()[:16]
    root = (cache or cache_dir()) / "gguf"
    out = root / f"{gguf.stem}-{key}"
    if (out / "model.safetensors").is_file():
        try:  # a conversion cached by an earlier version (mkdtemp's 0700): share it
            if out.stat().st_mode & 0o077 == 0:
                _share(out)
        except OSError:
            pass
        return out
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=root))
    try:
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        cfg = model.config
        if hasattr(cfg, "quantization_config"):
            del cfg.quantization_config
        cfg.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        safetensors.torch.save_model(model, str(tmp / "model.safetensors"))
        (tmp / "SOURCE.txt").write_text(f"converted from {gguf.resolve()}\n")
        _share(tmp)
        try:
            os.replace(tmp, out)
        except OSError:  # another process won the race
            shutil.rmtree(tmp, ignore_errors=True)
    except Exception as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise MeasureError(f"{gguf}: could not convert GGUF checkpoint ({exc})") from exc
    return out


def _share(folder: Path) -> None:
    """Give a cache folder and its files the modes a plain mkdir/open would (mkdtemp makes
    0700), so colleagues sharing a cache can read the conversion."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(folder, 0o777 & ~umask)
    for f in folder.rglob("*"):
        os.chmod(f, (0o777 if f.is_dir() else 0o666) & ~umask)


def hf_folder(ref: CheckpointRef) -> Path:
    """The Hugging Face folder that holds (or, for GGUF, caches) the checkpoint."""
    if ref.kind == "gguf":
        assert ref.gguf_file is not None
        return gguf_to_folder(ref.gguf_file)
    return ref.path


def load_config(ref: CheckpointRef, trust_remote_code: bool = False) -> Any:
    """The transformers config of a checkpoint (converting GGUF on first use)."""
    from transformers import AutoConfig

    folder = hf_folder(ref)
    if _needs_remote_code(folder) and not trust_remote_code:
        raise MeasureError(f"{ref.path}: the model needs its own code (config auto_map); "
                           "pass --trust-remote-code if you trust it")
    try:
        return AutoConfig.from_pretrained(folder, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as exc:
        raise MeasureError(f"{ref.path}: unreadable config ({exc})") from exc


def text_config(config: Any) -> Any:
    """The language model's config (a multimodal config's text part; else the config)."""
    get = getattr(config, "get_text_config", None)
    try:
        return get() if callable(get) else config
    except Exception:  # a custom config whose accessor fails: use it as it is
        return config


def architecture_key(config: Any) -> tuple:
    """What must agree between checkpoints of one run (type and shapes)."""
    model_type = getattr(config, "model_type", None)
    config = text_config(config)
    return (model_type,
        _cfg(config, "hidden_size", "n_embd", "d_model"),
        _cfg(config, "num_hidden_layers", "n_layer", "num_layers"),
        ffn_width(config),
    )


def ffn_width(config: Any) -> int | None:
    """The FFN width a config declares (Falcon: ``ffn_hidden_size``, else 4 x width)."""
    config = text_config(config)
    f = _cfg(config, "intermediate_size", "n_inner", "ffn_dim", "ffn_hidden_size")
    if f is None and getattr(config, "model_type", None) == "falcon":
        d = _cfg(config, "hidden_size")
        return 4 * int(d) if d else None
    return f


def _cfg(config: Any, *names: str) -> Any:
    for n in names:
        v = getattr(config, n, None)
        if v is not None:
            return v
    return None


@dataclass
class FFNSite:
    """One decoder layer's FFN: the down projection and how its input is made."""

    layer: int
    name: str
    mlp: nn.Module
    down: nn.Module
    act: nn.Module | None
    gated: bool

    def w_out(self) -> torch.Tensor:
        """W_out as (d_out, d_f): column i is neuron i's output vector (float32).

        Offloaded weights (accelerate's CPU or disk offload leaves a ``meta`` tensor on the
        module) are read through the module's offload hook, where they really are.
        """
        w = offloaded_weight(self.down)
        if isinstance(self.down, nn.Linear):
            return w.detach().float()
        if hasattr(self.down, "nf") and hasattr(self.down, "nx"):  # GPT-2 Conv1D: (nx=d_f, nf=d)
            return w.detach().float().t()
        return w.detach().float()


def offloaded_weight(module: nn.Module) -> torch.Tensor:
    """``module.weight``, read from accelerate's offload map when it is a meta tensor."""
    w = module.weight
    if w.device.type != "meta":
        return w
    hook = getattr(module, "_hf_hook", None)
    hooks = list(getattr(hook, "hooks", None) or ([hook] if hook is not None else []))
    for h in hooks:
        wm = getattr(h, "weights_map", None)
        if wm is not None:
            try:
                return torch.as_tensor(wm["weight"])
            except KeyError:
                continue
    raise MeasureError(f"{type(module).__name__}: weight is on the meta device and no offload "
                       "map holds it (accelerate offload hook not found)")


def _decoder_layers(model: nn.Module) -> tuple[str, list[nn.Module]] | None:
    """The language model's decoder layers: the ModuleList of ``num_hidden_layers`` blocks
    under ``get_decoder()`` (or the model), outside vision/audio towers.  None if not found."""
    cfg = getattr(model, "config", None)
    text_cfg = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    n = _cfg(text_cfg, "num_hidden_layers", "n_layer", "num_layers") if text_cfg is not None else None
    root, prefix = model, ""
    try:
        dec = model.get_decoder()
    except Exception:  # models without the accessor
        dec = None
    if isinstance(dec, nn.Module) and dec is not model:
        root = dec
        prefix = next((name + "." for name, m in model.named_modules() if m is dec), "")
    found = []
    for name, mod in root.named_modules():
        if not isinstance(mod, nn.ModuleList) or len(mod) == 0:
            continue
        if n is not None and len(mod) != n:
            continue
        full = prefix + name
        if any(k in full.lower() for k in NOT_LANGUAGE):
            continue
        found.append((full.count("."), full, mod))
    if not found:
        return None
    _, name, mod = min(found, key=lambda t: t[0])  # the shallowest list of blocks
    return name, list(mod)


def decoder_layers(model: nn.Module) -> list[nn.Module]:
    """The language model's decoder layers, first first (empty when not found)."""
    found = _decoder_layers(model)
    return found[1] if found is not None else []


def _moe_part(module: nn.Module) -> str | None:
    """Name of a mixture-of-experts part of a decoder layer (or of its MLP), if any."""
    for attr in MOE_NAMES:
        if isinstance(getattr(module, attr, None), nn.Module | nn.Parameter):
            return attr
    return None


def _site_of(layer: nn.Module) -> tuple[nn.Module, nn.Module] | None:
    """(container, down projection) of one decoder layer's dense FFN, or None.

    The container is the layer's ``mlp``/``feed_forward``/``ffn`` module, or the layer
    itself when the FFN lives on it (OPT: ``fc1``/``fc2``/``activation_fn``).
    """
    containers = [getattr(layer, m) for m in MLP_NAMES if isinstance(getattr(layer, m, None), nn.Module)]
    for mod in containers + [layer]:
        if _moe_part(mod) is not None and mod is not layer:
            return None
        down = next((getattr(mod, d) for d in DOWN_NAMES
                     if isinstance(getattr(mod, d, None), nn.Module)), None)
        if down is not None and hasattr(down, "weight"):
            return mod, down
    return None


def find_ffn_sites(model: nn.Module) -> list[FFNSite]:
    """Each decoder layer's FFN down projection, first layer first (language model only).

    Every decoder layer must have one: a model mixing dense and mixture-of-experts layers
    (DeepSeek-V2/V3 ``first_k_dense_replace``, Qwen-MoE ``mlp_only_layers``) is refused
    rather than measured on its dense layers alone, and an all-MoE model (Mixtral) gets an
    error that says so.  Raises :class:`MeasureError` naming what was looked for.
    """
    looked = (f"looked for modules named {'/'.join(MLP_NAMES)} (or the decoder layer itself) "
              f"holding {'/'.join(DOWN_NAMES)}")
    found = _decoder_layers(model)
    if found is None:
        raise MeasureError(f"{type(model).__name__}: no decoder-layer FFN down projection found "
                           f"(no list of decoder layers; {looked})")
    prefix, layers = found
    sites: list[FFNSite] = []
    missing: list[tuple[int, str | None]] = []
    for i, layer in enumerate(layers):
        hit = _site_of(layer)
        if hit is None:
            part = _moe_part(layer) or next(
                (f"{m}.{p}" for m in MLP_NAMES if isinstance(getattr(layer, m, None), nn.Module)
                 for p in [_moe_part(getattr(layer, m))] if p is not None), None)
            missing.append((i, part))
            continue
        mod, down = hit
        act = next((getattr(mod, a) for a in ACT_NAMES if isinstance(getattr(mod, a, None), nn.Module)), None)
        gated = any(isinstance(getattr(mod, g, None), nn.Module) for g in GATE_NAMES)
        name = next(n for n, m in model.named_modules() if m is mod)
        sites.append(FFNSite(layer=i, name=name, mlp=mod, down=down, act=act, gated=gated))
    if not missing:
        return sites
    moe = next((f"{prefix}.{i}.{part}" for i, part in missing if part), None)
    what = (f"mixture-of-experts layers (e.g. {moe}); measuring MoE experts is not supported"
            if moe else looked)
    if not sites:
        raise MeasureError(f"{type(model).__name__}: no decoder-layer FFN down projection found: "
                           f"{what}")
    idx = [i for i, _ in missing]
    shown = ", ".join(map(str, idx[:8])) + (", ..." if len(idx) > 8 else "")
    raise MeasureError(
        f"{type(model).__name__}: only {len(sites)} of {len(layers)} decoder layers have a dense "
        f"FFN (layers {shown} do not: {what}); refusing to report a partial model")


def activation_name(config: Any, override: str | None = None) -> str:
    """Normalised FFN activation name (relu, silu, gelu, ...)."""
    raw = override or _cfg(text_config(config), "hidden_act", "activation_function",
                           "hidden_activation", "activation") or "unknown"
    raw = str(raw).lower()
    if raw in ("swish", "silu"):
        return "silu"
    if raw.startswith("gelu"):
        return "gelu"
    if raw.startswith("relu"):
        return "relu" if raw == "relu" else raw
    return raw


ACTIVATION_OVERRIDES = {"relu": nn.ReLU, "silu": nn.SiLU, "gelu": nn.GELU}


def override_activation(sites: list[FFNSite], name: str) -> None:
    """Swap every FFN activation module for ``name`` (relu, silu, gelu) in place."""
    cls = ACTIVATION_OVERRIDES.get(name)
    if cls is None:
        raise MeasureError(f"--activation-override: unknown activation {name!r} "
                           f"(choose from {', '.join(ACTIVATION_OVERRIDES)})")
    for s in sites:
        attr = next((a for a in ACT_NAMES if isinstance(getattr(s.mlp, a, None), nn.Module)), None)
        if attr is None:
            raise MeasureError(f"{s.name}: no activation module to override (looked for {'/'.join(ACT_NAMES)})")
        new = cls()
        setattr(s.mlp, attr, new)
        s.act = new


@dataclass
class LoadedModel:
    """A model ready to measure, with its tokenizer (None: UTF-8 bytes) and FFN sites."""

    ref: CheckpointRef
    model: nn.Module
    tokenizer: Any
    config: Any
    sites: list[FFNSite]
    activation: str
    device: torch.device
    dtype: torch.dtype
    extra: dict = field(default_factory=dict)


def pick_device(device: str) -> torch.device:
    """auto -> cuda when available, else cpu."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise MeasureError(f"--device {device}: CUDA is not available here")
    return torch.device(device)


def pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """auto -> bfloat16 on a GPU that supports it, else float32."""
    if dtype == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    table = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype not in table:
        raise MeasureError(f"--dtype: unknown dtype {dtype!r}")
    return table[dtype]


def load_model(
    ref: CheckpointRef,
    device: str = "auto",
    dtype: str = "auto",
    device_map: str | dict | None = None,
    trust_remote_code: bool = False,
    activation_override: str | None = None,
    offload_folder: str | os.PathLike | None = None,
) -> LoadedModel:
    """Load a checkpoint for measurement (eval mode, no grad) and find its FFN sites.

    Weights are loaded straight onto the device (no CPU copy first); ``device_map``
    ('auto', 'balanced', ... or a module -> device dict, 'disk' included) spreads them with
    accelerate, offloading to ``offload_folder`` (default: a folder in the cache).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dev = pick_device(device)
    dt = pick_dtype(dtype, dev)
    config = load_config(ref, trust_remote_code)
    folder = hf_folder(ref)
    kwargs: dict[str, Any] = {"dtype": dt, "trust_remote_code": trust_remote_code}
    if device_map:
        kwargs["device_map"] = device_map
        kwargs["offload_folder"] = str(offload_folder or cache_dir() / "offload" / f"{os.getpid()}")
    elif ref.kind != "pickle":
        kwargs["device_map"] = str(dev)  # load straight onto the device
    try:
        if ref.kind == "pickle":
            model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
            _load_pickled(model, folder)
            model = model.to(dt)
        else:
            model = AutoModelForCausalLM.from_pretrained(folder, use_safetensors=True, **kwargs)
    except MeasureError:
        raise
    except torch.cuda.OutOfMemoryError as exc:
        raise MeasureError(f"{ref.path}: out of GPU memory while loading the model; use "
                           "--device-map auto (spreads it over GPUs, CPU and disk)") from exc
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise MeasureError(f"{ref.path}: could not load the model ({type(exc).__name__}: {exc})") from exc
    except Exception as exc:
        if type(exc).__name__ != "SafetensorError":
            raise
        raise MeasureError(f"{ref.path}: unreadable safetensors file (corrupt header or "
                           f"truncated: {exc})") from exc
    check_finite_weights(model, ref)
    if not device_map and ref.kind == "pickle":
        model = model.to(dev)
    model.eval()
    model.requires_grad_(False)
    sites = find_ffn_sites(model)
    if activation_override:
        override_activation(sites, activation_override)
    tokenizer = None
    if any((folder / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json", "vocab.json",
                                            "tokenizer.model")):
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
    return LoadedModel(ref=ref, model=model, tokenizer=tokenizer, config=config, sites=sites,
                       activation=activation_name(config, activation_override), device=dev, dtype=dt,
                       extra={"device_map": device_map} if device_map else {})


def check_finite_weights(model: nn.Module, ref: CheckpointRef) -> None:
    """Refuse weights holding NaN or infinite values (a row measured on them would be
    garbage); offloaded (meta) weights are checked where they are read."""
    bad, first = 0, None
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.device.type == "meta" or not p.is_floating_point():
                continue
            n = int((~torch.isfinite(p)).sum())
            if n:
                bad += n
                first = first or name
    if bad:
        raise MeasureError(f"{ref.path}: the weights hold {bad} non-finite values (NaN or "
                           f"infinite), e.g. in {first}; no row is written")


def _load_pickled(model: nn.Module, folder: Path) -> None:
    files = sorted(folder.glob("pytorch_model*.bin")) + sorted(folder.glob("*.pt"))
    state: dict[str, torch.Tensor] = {}
    for f in files:
        try:
            part = torch.load(f, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise MeasureError(f"{f}: not loadable with weights_only=True ({exc})") from exc
        if not isinstance(part, dict):
            raise MeasureError(f"{f}: expected a state dict")
        state.update(part)
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = {"lm_head.weight"}
    bad = [m for m in missing if m not in tied and not m.endswith("attn.bias")]
    if bad:
        raise MeasureError(f"{folder}: pickled weights lack {bad[0]} (and {len(bad) - 1} more)")
    if hasattr(model, "tie_weights"):
        model.tie_weights()


def param_counts(model: nn.Module) -> tuple[int, int]:
    """(non-embedding, total) parameter counts; tied weights counted once."""
    total = sum(p.numel() for p in model.parameters())
    emb = 0
    for mod in model.modules():
        if isinstance(mod, nn.Embedding):
            emb += mod.weight.numel()
    out = getattr(model, "get_output_embeddings", lambda: None)()
    if out is not None and hasattr(out, "weight"):
        inp = model.get_input_embeddings()
        if inp is None or out.weight is not inp.weight:
            emb += out.weight.numel()
    return total - emb, total
