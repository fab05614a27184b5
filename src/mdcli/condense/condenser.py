"""The NCFM condensation loop (class-parallel under ``torchrun``).

Each iteration draws (from streams keyed by seed and iteration, the same on every rank) one
of the feature extractors and a blend coefficient ``a ~ U[0, 1]``, so the network is
``init + a (trained - init)``, and fresh frequencies. For each class of this rank it draws a
fresh random real batch, and the matching loss is the CF loss (or MMD) between L2-normalised
features of real and synthetic samples, averaged over ``network.layer_index`` layers, times
``condense.loss_scale``. The synthetic data take a step (SGD with momentum, or Adam), the
sampling network a step *up* the same loss (min-max), then ``iter_calib`` calibration steps
(cross-entropy of the trained network on the synthetic data) follow.
"""

from __future__ import annotations

import torch
import torch.distributed as tdist
import torch.nn.functional as F
from torch import nn

from mdcli.condense.config import CondenseConfig
from mdcli.condense.data import RealData
from mdcli.condense.decode import decode_class
from mdcli.condense.domains import ImageDomain, TextDomain
from mdcli.condense.dsa import DiffAugment
from mdcli.condense.premodels import Premodel, blend
from mdcli.condense.sampling import SamplingNet, gaussian_frequencies
from mdcli.condense.streams import stream
from mdcli.condense.text_training import classification_loss
from mdcli.dist import DistContext
from mdcli.errors import InputError
from mdcli.losses.mmd import mmd_loss
from mdcli.losses.ncfm import cf_loss


def class_labels(c: int, count: int, nclass: int, multilabel: bool) -> torch.Tensor:
    """Labels of ``count`` synthetic samples of class ``c``: indices, or one-hot vectors."""
    if multilabel:
        return F.one_hot(torch.full((count,), c), nclass).float()
    return torch.full((count,), c, dtype=torch.long)


def _sum_over_ranks(value: torch.Tensor) -> torch.Tensor:
    if tdist.is_initialized():
        tdist.all_reduce(value, op=tdist.ReduceOp.SUM)
    return value


class Condenser:
    """Synthetic data of the classes ``class_list`` (this rank's) and how they learn.

    Parameters
    ----------
    cfg : CondenseConfig
    data : RealData
    domain : ImageDomain or TextDomain
    premodels : list of Premodel
        Initial and trained weights of the feature extractors.
    ctx : DistContext
    class_list : list of int
        The classes this rank condenses.
    start : dict, optional
        A loaded ``syn_data`` record (``data``, ``mask``) to start from (``init: load``).
    """

    def __init__(self, cfg: CondenseConfig, data: RealData, domain: ImageDomain | TextDomain,
                 premodels: list[Premodel], ctx: DistContext, class_list: list[int],
                 start: dict | None = None) -> None:
        self.cfg, self.data, self.domain, self.premodels = cfg, data, domain, premodels
        self.device, self.classes = ctx.device, class_list
        c = cfg.condense
        self.ipc = c.ipc
        self.members = [data.class_members(k).to(self.device) for k in range(data.nclass)]
        self.x_real = data.x_train.to(self.device)
        self.mask_real = data.mask_train.to(self.device) if data.mask_train is not None else None
        full, masks = self._initial(start)
        self.full_shape = tuple(full.shape)
        self.mask = masks.to(self.device) if masks is not None else None
        self.labels = torch.cat([class_labels(k, c.ipc, data.nclass, data.multilabel)
                                 for k in range(data.nclass)]).to(self.device)
        mine = torch.cat([full[k * c.ipc:(k + 1) * c.ipc] for k in class_list]) if class_list \
            else full[:0]
        self.syn = nn.Parameter(mine.to(self.device))
        opt = cfg.optimization
        if opt.optimizer == "sgd":
            self.optimizer = torch.optim.SGD([self.syn], lr=opt.lr_img, momentum=opt.mom_img)
        else:
            adam = torch.optim.AdamW if opt.optimizer == "adamw" else torch.optim.Adam
            self.optimizer = adam([self.syn], lr=opt.lr_img * opt.lr_scale_adam)
        aug = cfg.augmentation
        self.augment = DiffAugment(aug.aug_type if aug.dsa and domain.modality == "image"
                                   else "none", "augmentation.aug_type")
        self.model = self._frozen(domain.new_model(0))
        self.final_model = self._frozen(domain.new_model(0))
        self.dims = self._feature_dims()
        self.nets: nn.ModuleList | None = None
        if c.sampling_net and c.dis_metrics == "NCFM":
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(stream(cfg.seed, "sampling_net").initial_seed())
                self.nets = nn.ModuleList(SamplingNet(d, c.freq_scale) for d in self.dims)
            self.nets.to(self.device)
            self.net_optimizer = torch.optim.Adam(self.nets.parameters(), lr=opt.lr_sampling_net)

    def _frozen(self, model: nn.Module) -> nn.Module:
        model = model.to(self.device).eval()
        for p in model.parameters():
            p.requires_grad_(False)
        return model

    def _initial(self, start: dict | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        c = self.cfg.condense
        if start is not None:
            data, mask = start["data"], start.get("mask")
            if data.shape[0] != self.data.nclass * c.ipc:
                raise InputError(f"--load-path: holds {data.shape[0]} samples, expected "
                                 f"{self.data.nclass} classes x ipc {c.ipc}")
            if int(start["factor"]) != c.factor:
                raise InputError(f"--load-path: stored with condense.factor {start['factor']}, "
                                 f"but this run's factor is {c.factor}")
            return data.float(), mask
        parts = [self.domain.initial(k, c.ipc, c.init, stream(self.cfg.seed, "init", k))
                 for k in range(self.data.nclass)]
        masks = [m for _, m in parts]
        return (torch.cat([x for x, _ in parts]),
                torch.cat(masks) if masks[0] is not None else None)

    @torch.no_grad()
    def _feature_dims(self) -> list[int]:
        mask = self.mask_real[:1] if self.mask_real is not None else None
        feats = self.domain.features(self.model, self.x_real[:1], mask,
                                     self.cfg.network.layer_index)
        return [f.shape[1] for f in feats]

    def _slot(self, j: int) -> slice:
        """Rows ``j * ipc ..`` of a per-class block: class ``j`` of the full set, or this
        rank's ``j``-th class in ``syn``."""
        return slice(j * self.ipc, (j + 1) * self.ipc)

    def _syn_inputs(self, j: int, k: int
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """This rank's ``j``-th class (class ``k``) decoded: inputs, labels, masks."""
        c = self.cfg.condense
        x, labels = decode_class(self.syn[self._slot(j)], self.labels[self._slot(k)], c.factor,
                                 c.decode_type, c.decode_bound)
        mask = self.mask[self._slot(k)] if self.mask is not None else None
        return x, labels, mask

    def frequencies(self, gen: torch.Generator) -> list[torch.Tensor]:
        """One (num_freqs, d) frequency matrix per matched layer."""
        c = self.cfg.condense
        if c.dis_metrics != "NCFM":
            return []
        if self.nets is None:
            return [gaussian_frequencies(c.num_freqs, d, c.freq_scale, gen).to(self.device)
                    for d in self.dims]
        return [net(torch.randn(c.num_freqs, d, generator=gen).to(self.device))
                for net, d in zip(self.nets, self.dims, strict=True)]

    def match_loss(self, j: int, k: int, it: int, freqs: list[torch.Tensor]) -> torch.Tensor:
        """Matching loss of class ``k`` (this rank's ``j``-th) at iteration ``it``, unscaled."""
        c, layers = self.cfg, self.cfg.network.layer_index
        members = self.members[k]
        pick = torch.randperm(len(members), generator=stream(c.seed, "real", it, k))
        idx = members[pick[:c.dataset.batch_real].to(self.device)]
        mask = self.mask_real[idx] if self.mask_real is not None else None
        x_syn, _, mask_syn = self._syn_inputs(j, k)
        x_real = self.x_real[idx]
        if self.augment:  # siamese: one draw of the parameters for real and synthetic images
            both = self.augment(torch.cat([x_real, x_syn]), stream(c.seed, "augment", it, k),
                                shared=True)
            x_real, x_syn = both[:len(x_real)], both[len(x_real):]
        with torch.no_grad():
            real = self.domain.features(self.model, x_real, mask, layers)
        syn = self.domain.features(self.model, x_syn, mask_syn, layers)
        dm = c.condense.dis_metrics == "MMD" and c.condense.mmd_variant == "dm"
        losses = []
        for i, (r, s) in enumerate(zip(real, syn, strict=True)):
            if not dm:
                r, s = F.normalize(r, dim=1), F.normalize(s, dim=1)
            if c.condense.dis_metrics == "NCFM":
                losses.append(cf_loss(r, s, freqs[i], c.condense.alpha_for_loss,
                                      c.condense.beta_for_loss))
            else:
                losses.append(mmd_loss(r, s))
        return torch.stack(losses).mean()

    def match_scale(self) -> float:
        """``loss_scale``, except for DM's MMD, which is used unscaled."""
        c = self.cfg.condense
        return 1.0 if c.dis_metrics == "MMD" and c.mmd_variant == "dm" else c.loss_scale

    def calib_loss(self, it: int, step: int) -> torch.Tensor:
        """Sum over this rank's classes of the trained network's loss on their synthetic data."""
        total = self.syn.new_zeros(())
        for j, k in enumerate(self.classes):
            x, labels, mask = self._syn_inputs(j, k)
            if self.augment:
                x = self.augment(x, stream(self.cfg.seed, "augment", it, k, step + 1),
                                 shared=True)
            total = total + classification_loss(self.domain.logits(self.final_model, x, mask),
                                                 labels)
        return total

    def step(self, it: int) -> dict[str, float]:
        """One iteration; returns the matching and calibration losses summed over all classes."""
        c = self.cfg.condense
        gen = stream(self.cfg.seed, "iteration", it)
        premodel = self.premodels[int(torch.randint(len(self.premodels), (1,), generator=gen))]
        a = float(torch.rand((), generator=gen))
        self.model.load_state_dict(blend(premodel, a))
        freqs = self.frequencies(gen)
        match = self.syn.new_zeros(())
        self.optimizer.zero_grad(set_to_none=True)
        if self.nets is not None:
            self.net_optimizer.zero_grad(set_to_none=False)
        per_class = c.step_schedule == "class"
        for j, k in enumerate(self.classes):
            loss = self.match_scale() * self.match_loss(j, k, it, freqs)
            if per_class:  # the reference: one step of the synthetic data per class
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward(retain_graph=self.nets is not None)
                self.optimizer.step()
                loss = loss.detach()
            match = match + loss
        if match.requires_grad:
            match.backward()
        if self.nets is not None:  # gradient ascent: the frequencies maximise the discrepancy
            for p in self.nets.parameters():
                grad = p.grad if p.grad is not None else torch.zeros_like(p)
                p.grad = -_sum_over_ranks(grad)
            self.net_optimizer.step()
        if not per_class:
            self.optimizer.step()
        calib = self.syn.new_zeros(())
        if c.iter_calib and c.calib_weight > 0:
            self.final_model.load_state_dict(premodel.final)
            for step in range(c.iter_calib):
                calib = c.calib_weight * self.calib_loss(it, step)
                self.optimizer.zero_grad(set_to_none=True)
                if calib.requires_grad:
                    calib.backward()
                self.optimizer.step()
        totals = _sum_over_ranks(torch.stack([match.detach(), calib.detach()]).double())
        return {"match_loss": totals[0].item(), "calib_loss": totals[1].item(), "blend": a}

    @torch.no_grad()
    def gather(self) -> dict[str, torch.Tensor]:
        """The whole synthetic set (every rank's classes) on every rank, on the CPU."""
        full = torch.zeros(self.full_shape, device=self.device)
        for j, k in enumerate(self.classes):
            full[self._slot(k)] = self.syn[self._slot(j)]
        full = _sum_over_ranks(full).cpu()
        out = {"data": full, "labels": self.labels.cpu()}
        if self.mask is not None:
            out["mask"] = self.mask.cpu()
        return out
