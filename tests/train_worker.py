"Worker of tests/test_training_distributed.py: one `reasonembed.training.train` run (launched alone or under torchrun)."
import json, sys
import torch

from reasonembed.training import TrainConfig, train


def main(data: str, model: str, out: str, batch_size: int, grad_cache_chunk: int = 0) -> None:
    torch.set_num_threads(1)
    cfg = TrainConfig(data=[data], model=model, output_dir=out, query_max_len=32, passage_max_len=48,
                      batch_size=batch_size, group_size=3, mode="ri", ri_start_step=1, lr=1e-3, max_steps=3,
                      save_every=0, save_model=False, plot=False, progress=False, log_every=0, seed=5, num_workers=0,
                      device="cpu", grad_cache_chunk=grad_cache_chunk, max_grad_norm=0.0,
                      adam_eps=1e-16)   # no clipping and a negligible eps: Adam ignores the 1/W gradient scale
    train(cfg)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]) if len(sys.argv) > 5 else 0)
