"""Real torch.distributed check of `reasonembed.loss` (gloo, CPU processes).

Usage: python tests/dist_loss_worker.py [world_size=2]. Exits non-zero when a check fails; every rank prints
`rank R OK` at the end. Every rank also computes the single-process reference on the concatenated batch itself
(the data are generated from fixed seeds), and compares against it.
"""
import math, os, socket, sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
import torch.nn.functional as F

from reasonembed.loss import (GradCache, LossConfig, contrastive_loss, gather_with_grad, global_pos_idx, ri_info_nce,
                              slice_inputs)

TOL = 1e-5
RI = {k: getattr(LossConfig(), k) for k in ("kappa", "eps", "ri_start_step")}   # the loss settings the checks leave at their defaults


def close(a, b, what, tol=TOL):
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    err = (a - b).abs().max().item() if a.numel() else 0.0
    if not (err <= tol * max(1.0, b.abs().max().item() if b.numel() else 1.0)):
        raise AssertionError(f"{what}: max abs diff {err:.3g}")


class TinyEncoder(nn.Module):
    def __init__(self, vocab=60, hidden=32, dim=16, p_drop=0.0):
        super().__init__()
        self.bag = nn.EmbeddingBag(vocab, hidden, mode="mean", padding_idx=0)
        self.drop, self.lin = nn.Dropout(p_drop), nn.Linear(hidden, dim)

    def forward(self, input_ids, attention_mask=None):
        return F.normalize(self.drop(self.lin(self.drop(self.bag(input_ids)))), dim=-1)


def embeddings(world, n_local, G, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    Q = F.normalize(torch.randn(world * n_local, d, generator=g), dim=-1)
    QR = F.normalize(Q + 0.7 * torch.randn(world * n_local, d, generator=g), dim=-1)
    P = F.normalize(torch.randn(world * n_local * G, d, generator=g), dim=-1)
    return Q, QR, P


def tokens(n, seed, L=7, vocab=60):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (n, L), generator=g)
    ids[:, L // 2:] *= (torch.rand(n, 1, generator=g) > 0.5).long()
    return {"input_ids": ids, "attention_mask": (ids > 0).long()}


def check_embedding_level(rank, world):
    n_local, G = 3, 4
    Q, QR, P = embeddings(world, n_local, G)
    qs, ps = slice(rank * n_local, (rank + 1) * n_local), slice(rank * n_local * G, (rank + 1) * n_local * G)
    for kw in [dict(mode="ri", step=200), dict(mode="ri", step=0), dict(mode="basic", step=200)]:
        kw = dict(kw, temperature=0.05, kappa=3.0, ri_start_step=100, eps=RI["eps"])
        q_ref, p_ref = Q.clone().requires_grad_(), P.clone().requires_grad_()
        loss_ref, st_ref = ri_info_nce(q_ref, QR, p_ref, group_size=G, distributed=False, **kw)
        loss_ref.backward()
        q, p = Q[qs].clone().requires_grad_(), P[ps].clone().requires_grad_()
        loss, st = ri_info_nce(q, QR[qs], gather_with_grad(p), **kw)  # default layout: global_pos_idx
        loss.backward()
        close(loss.item(), loss_ref.item(), f"{kw} loss")
        sd, sr = st.as_dict(), st_ref.as_dict()
        for k in sd:
            if isinstance(sd[k], float) and math.isnan(sr[k]): assert math.isnan(sd[k]), k
            else: close(sd[k], sr[k], f"{kw} stats {k}")
        # each rank's embeddings get the full gradient of the global loss with respect to them
        close(q.grad, q_ref.grad[qs], f"{kw} query gradient")
        close(p.grad, p_ref.grad[ps], f"{kw} passage gradient")


def check_uneven(rank, world):
    "Shards of different sizes: rank r holds n_r queries; positions passed explicitly."
    G, sizes = 2, [3, 1] + [2] * (world - 2)
    Q, QR, P = embeddings(1, sum(sizes), G, seed=5)
    off = sum(sizes[:rank])
    qs, ps = slice(off, off + sizes[rank]), slice(off * G, (off + sizes[rank]) * G)
    q_ref, p_ref = Q.clone().requires_grad_(), P.clone().requires_grad_()
    loss_ref, _ = ri_info_nce(q_ref, QR, p_ref, step=200, temperature=0.05, distributed=False, **RI)
    loss_ref.backward()
    q, p = Q[qs].clone().requires_grad_(), P[ps].clone().requires_grad_()
    pos = (off + torch.arange(sizes[rank])) * G
    loss, _ = ri_info_nce(q, QR[qs], gather_with_grad(p), pos_idx=pos, step=200, temperature=0.05, **RI)
    loss.backward()
    close(loss.item(), loss_ref.item(), "uneven loss")
    close(q.grad, q_ref.grad[qs], "uneven query gradient")
    close(p.grad, p_ref.grad[ps], "uneven passage gradient")


def check_ddp_model(rank, world):
    """DDP(tiny model): after DDP's averaging the parameter gradients are the single-process ones divided by the world
    size (the authors' convention: every rank computes the global loss, DDP averages); plain step and GradCache."""
    n_local, G = 4, 3
    qi, pi, ri = tokens(world * n_local, 1), tokens(world * n_local * G, 2), tokens(world * n_local, 3)
    torch.manual_seed(0)
    ref = TinyEncoder()
    cfg = LossConfig(mode="ri", temperature=0.05, ri_start_step=0)
    loss_ref, _ = ri_info_nce(ref(**qi), ref(**ri).detach(), ref(**pi), group_size=G, temperature=cfg.temperature, step=1,
                              ri_start_step=0, distributed=False, kappa=cfg.kappa, eps=cfg.eps)  # single process on the concatenated batch
    loss_ref.backward()
    g_ref = {k: v.grad.clone() for k, v in ref.named_parameters()}

    local = lambda inp, n: slice_inputs(inp, rank * n, (rank + 1) * n)
    qi_l, pi_l, ri_l = local(qi, n_local), local(pi, n_local * G), local(ri, n_local)
    torch.manual_seed(0)
    model = nn.parallel.DistributedDataParallel(TinyEncoder())
    with torch.no_grad(): qr = model(**ri_l)
    loss, _ = contrastive_loss(model(**qi_l), model(**pi_l), qr, cfg=cfg, step=1)
    loss.backward()
    close(loss.item(), loss_ref.item(), "DDP loss")
    for k, v in model.module.named_parameters(): close(v.grad * world, g_ref[k], f"DDP gradient {k}")

    model.zero_grad(set_to_none=True)
    gc = GradCache(lambda inp: model(**inp), chunk_size=3, no_sync=model.no_sync)
    loss_gc, st = gc.step(qi_l, pi_l, contrastive_loss, q_reason_inputs=ri_l, cfg=cfg, step=1)
    close(loss_gc.item(), loss_ref.item(), "GradCache+DDP loss")
    assert st.used_ri
    for k, v in model.module.named_parameters(): close(v.grad * world, g_ref[k], f"GradCache+DDP gradient {k}")


def worker(rank, world, port):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        check_embedding_level(rank, world); print(f"rank {rank}: embedding-level loss/gradients/stats match", flush=True)
        check_uneven(rank, world); print(f"rank {rank}: uneven shards match", flush=True)
        check_ddp_model(rank, world); print(f"rank {rank}: DDP model and GradCache+DDP gradients match", flush=True)
        dist.barrier()
        print(f"rank {rank} OK", flush=True)
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(world: int = 2) -> None:
    mp.spawn(worker, args=(world, free_port()), nprocs=world, join=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
