"""Build a randomly initialised Qwen3 (Qwen3-0.6B shapes by default) with a BPE tokenizer trained on the pydoc corpus.

For GPU checks where the hub is out of reach: the training and evaluation code paths are the real ones, the weights
are not. usage: python tests/gpu/make_random_qwen3.py OUT_DIR [--layers 28 --hidden 1024]
"""
import argparse
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers, decoders
from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM
from reasonembed.data import pydoc_corpus

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("out"); ap.add_argument("--layers", type=int, default=28); ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--vocab", type=int, default=8192)
    a = ap.parse_args()
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False); tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator([d.text for d in pydoc_corpus()], trainers.BpeTrainer(
        vocab_size=a.vocab, special_tokens=["<unk>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"]))
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    cfg = Qwen3Config(num_hidden_layers=a.layers, hidden_size=a.hidden, intermediate_size=3 * a.hidden, num_attention_heads=16,
                      num_key_value_heads=8, head_dim=128, vocab_size=len(hf_tok), eos_token_id=1, pad_token_id=1,
                      max_position_embeddings=32768, tie_word_embeddings=True)
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(cfg).to(torch.bfloat16)
    model.save_pretrained(a.out); hf_tok.save_pretrained(a.out)
    print(f"{a.out}: {sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters, vocab {len(hf_tok)}")
