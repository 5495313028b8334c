"""GPU check of the transformers backend (run by hand on a CUDA machine; not part of the CPU test suite).

Builds a tiny random Qwen3 with a word-level tokenizer in /tmp, then checks on CUDA, in bf16 and fp32: a seeded sample
is the same alone and inside a batch; greedy works; the resume property (crash after every 5 completions) holds.
usage: python tests/llm_assets/gpu_check.py
"""
import torch
from tokenizers import Tokenizer, models, trainers, pre_tokenizers
from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM
from reasonembed.llm import SamplingParams
from reasonembed.llm_backends import TransformersLLM
from reasonembed.testing import run_until_done

if __name__ == "__main__":
    t = Tokenizer(models.WordLevel(unk_token="<unk>")); t.pre_tokenizer = pre_tokenizers.Whitespace()
    t.train_from_iterator(["hello world a b c d e f g the of to user assistant x y z"] * 10,
                          trainers.WordLevelTrainer(special_tokens=["<unk>", "<eos>", "<|im_start|>", "<|im_end|>"]))
    tok = PreTrainedTokenizerFast(tokenizer_object=t, unk_token="<unk>", eos_token="<eos>", pad_token="<eos>")
    tok.chat_template = "{% for m in messages %}<|im_start|>{{m.role}} {{m.content}}<|im_end|>{% endfor %}<|im_start|>assistant"
    cfg = Qwen3Config(num_hidden_layers=2, hidden_size=64, intermediate_size=128, num_attention_heads=2, num_key_value_heads=1,
                      head_dim=32, vocab_size=len(tok), eos_token_id=1, pad_token_id=1)
    torch.manual_seed(0); Qwen3ForCausalLM(cfg).save_pretrained("/tmp/q"); tok.save_pretrained("/tmp/q")
    P = [[{"role": "user", "content": s}] for s in ["hello world", "a b c d e f g x y z the of", "the", "of to the a b"]]
    for dt in ["bfloat16", "float32"]:
        llm = TransformersLLM("/tmp/q", batch_size=4, dtype=dt, show_progress=False)
        print(llm.device, llm.lm.dtype)
        sp = SamplingParams(temperature=0.9, top_k=10, top_p=0.9, max_tokens=12, seed=3)
        a = llm.chat(P, sp)
        b = TransformersLLM("/tmp/q", batch_size=1, dtype=dt, show_progress=False).chat(P[2:3], sp)
        print(dt, "alone == batched:", a[2] == b[0], a[2], b[0])
        g = llm.chat(P, SamplingParams(temperature=0, max_tokens=8)); print("greedy:", g[0], llm.usage)
        def stage(l): return l.chat(P, SamplingParams(temperature=0.9, max_tokens=10, seed=1, n=3))
        ref = stage(TransformersLLM("/tmp/q", batch_size=4, dtype=dt, show_progress=False, cache=f"/tmp/ref_{dt}"))
        out, calls, cr = run_until_done(lambda: TransformersLLM("/tmp/q", batch_size=4, dtype=dt, show_progress=False,
                                                                cache=f"/tmp/run_{dt}"), stage, crash_every=5)
        print(dt, "resume identical:", out == ref, "calls", calls, "crashes", cr)
