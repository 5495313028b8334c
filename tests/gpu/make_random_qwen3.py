"""Build a randomly initialised Qwen3 with a BPE tokenizer trained on the pydoc corpus, offline.

For GPU checks where the hub is out of reach: the training and encoding code paths are the real ones, the weights are
not. Presets: `qwen3-0.6b` (the default; 28 layers, hidden 1024) and `qwen3-8b` (Qwen3-8B's shapes: 36 layers, hidden
4096, MLP 12288, 32 query / 8 key-value heads of 128, 151,936 embedding rows; 8.2B parameters, 15.3 GiB in bf16; built
on the GPU when there is one, in about a minute). The tokenizer has `--vocab` tokens (8,192): the embedding table keeps
the preset's rows, so the memory is the real model's. `tests/gpu/gpu_check.py` builds its model with `build_random_qwen3`.

usage: python tests/gpu/make_random_qwen3.py OUT_DIR [--preset qwen3-8b] [--layers 28 --hidden 1024 ...]
"""
from __future__ import annotations
import argparse, json, time
from pathlib import Path

PRESETS = {
    "qwen3-0.6b": dict(layers=28, hidden=1024, intermediate=None, heads=16, kv_heads=8, head_dim=128, vocab_rows=None),
    "qwen3-8b": dict(layers=36, hidden=4096, intermediate=12288, heads=32, kv_heads=8, head_dim=128, vocab_rows=151936),
}


def train_tokenizer(vocab: int = 8192):
    "A byte-level BPE tokenizer trained on the pydoc corpus (EOS and pad `<|endoftext|>`)."
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers, decoders
    from transformers import PreTrainedTokenizerFast
    from reasonembed.data import pydoc_corpus
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False); tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator([d.text for d in pydoc_corpus()], trainers.BpeTrainer(
        vocab_size=vocab, special_tokens=["<unk>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                                   model_max_length=32768)


def build_random_qwen3(out, layers: int = 28, hidden: int = 1024, intermediate: int | None = None, heads: int = 16,
                       kv_heads: int = 8, head_dim: int = 128, vocab_rows: int | None = None, vocab: int = 8192,
                       device: str | None = None) -> dict:
    """Write a random bf16 Qwen3 of these shapes and its tokenizer to `out` (`vocab_rows`: embedding rows, default the
    tokenizer's size); returns what was built (also in `out/built.json`). A folder with the same `built.json` is reused."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM
    out = Path(out)
    spec = dict(layers=layers, hidden=hidden, intermediate=intermediate or 3 * hidden, heads=heads, kv_heads=kv_heads,
                head_dim=head_dim, vocab_rows=vocab_rows, vocab=vocab, seed=0)
    marker = out / "built.json"
    if marker.exists() and json.loads(marker.read_text()).get("spec") == spec:
        return {**json.loads(marker.read_text()), "reused": True}
    t0 = time.time()
    hf_tok = train_tokenizer(vocab)
    rows = max(vocab_rows or 0, len(hf_tok))
    cfg = Qwen3Config(num_hidden_layers=layers, hidden_size=hidden, intermediate_size=spec["intermediate"], num_attention_heads=heads,
                      num_key_value_heads=kv_heads, head_dim=head_dim, vocab_size=rows, eos_token_id=hf_tok.eos_token_id,
                      pad_token_id=hf_tok.pad_token_id, max_position_embeddings=40960, tie_word_embeddings=True)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)          # initialised in bf16 where it is built: no fp32 copy of 8B weights
    try:
        with torch.device(device): model = Qwen3ForCausalLM(cfg)
    finally: torch.set_default_dtype(default)
    n_params = sum(p.numel() for p in model.parameters())
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, max_shard_size="5GB"); hf_tok.save_pretrained(out)
    del model
    if device.startswith("cuda"): torch.cuda.empty_cache()
    info = {"spec": spec, "parameters": n_params, "tokenizer_vocab": len(hf_tok), "embedding_rows": rows, "device": device,
            "build_s": round(time.time() - t0, 1)}
    marker.write_text(json.dumps(info, indent=1))
    return {**info, "reused": False}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out"); ap.add_argument("--preset", choices=sorted(PRESETS), default="qwen3-0.6b")
    for k in ("layers", "hidden", "intermediate", "heads", "kv_heads", "head_dim", "vocab_rows"):
        ap.add_argument("--" + k.replace("_", "-"), type=int, default=None, help=f"overrides the preset's {k}")
    ap.add_argument("--vocab", type=int, default=8192, help="tokenizer vocabulary (BPE on the pydoc corpus)")
    ap.add_argument("--device", default=None, help="where the weights are initialised (default: cuda if there is one)")
    a = ap.parse_args()
    shape = {**PRESETS[a.preset], **{k: v for k, v in vars(a).items() if k in PRESETS["qwen3-8b"] and v is not None}}
    info = build_random_qwen3(a.out, **shape, vocab=a.vocab, device=a.device)
    how = "reused" if info["reused"] else f"built in {info['build_s']} s"
    print(f"{a.out}: {info['parameters'] / 1e6:.0f}M parameters, vocab {info['tokenizer_vocab']} ({how})")
