"""Worker of tests/test_training_distributed.py and tests/test_deepspeed.py: one `reasonembed.training.train` run
(launched alone or under torchrun). Extra `key=value` arguments override the config (`reasonembed.config.load_config`)."""
import sys
import torch

from reasonembed.config import load_config
from reasonembed.training import TrainConfig, train


def training_set(root):
    "The data and model the distributed-training tests share: 16 samples of two domains, a tiny decoder; `[data, model]`."
    from reasonembed.batching import demo_samples
    from reasonembed.data import write_jsonl
    from reasonembed.testing import make_tiny_decoder
    samples = demo_samples(16, n_neg=3, domains=("a", "b"), seed=4)
    write_jsonl(root / "train.jsonl", samples)
    model = make_tiny_decoder(root / "tiny", texts=[s.pos[0] for s in samples])   # no dropout: full fine-tuning
    return [str(root / "train.jsonl"), str(model)]


def main(data: str, model: str, out: str, batch_size: int, grad_cache_chunk: int = 0, *sets: str) -> None:
    torch.set_num_threads(1)
    base = dict(data=[data], output_dir=out, lr=1e-3, max_steps=3, save_every=0, save_model=False, plot=False,
                progress=False, log_every=0, seed=5, num_workers=0, grad_cache_chunk=grad_cache_chunk,
                embedder=dict(model=model, query_max_len=32, passage_max_len=48, device="cpu", append_eos=True),  # EOS pooled: a
                # well-conditioned loss (on its last word the random tiny decoder's loss is ~15 and float rounding grows)
                batching=dict(batch_size=batch_size, group_size=3), loss=dict(mode="ri", ri_start_step=1),
                max_grad_norm=0.0, adam_eps=1e-16)   # no clipping and a negligible eps: Adam ignores the 1/W gradient scale
    train(load_config(TrainConfig, sets=list(sets), base=base))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]) if len(sys.argv) > 5 else 0, *sys.argv[6:])
