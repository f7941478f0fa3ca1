"""PyTorch stand-ins for the reference models whose weights `tf_t2i.convert` reads.

Written for the tests from the architecture descriptions (AttnGAN's `RNN_ENCODER` and
`CNN_ENCODER`, torchvision's Inception-v3 modules, SSA-GAN's `NetG`), with the reference
parameter names, so that their `state_dict()` has the keys the real checkpoints have.
They run in eval mode only and exist to produce expected outputs; torch is a test-only
dependency.
"""

import collections

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


# --- AttnGAN RNN_ENCODER ---------------------------------------------------------------

class RNNEncoder(nn.Module):
    """Embedding `encoder` + one-layer bidirectional LSTM `rnn`, lengths packed."""

    def __init__(self, ntoken, ninput=300, nhidden=256):
        super().__init__()
        self.encoder = nn.Embedding(ntoken, ninput)
        self.drop = nn.Dropout(0.5)
        self.rnn = nn.LSTM(ninput, nhidden // 2, 1, batch_first=True, bidirectional=True)

    def forward(self, captions, lengths):
        """captions int64 [B, T] (0-padded), lengths [B] -> (words [B, D, T], sent [B, D])."""
        embedded = self.drop(self.encoder(captions))
        packed = nn.utils.rnn.pack_padded_sequence(embedded, lengths.cpu(), batch_first=True,
                                                   enforce_sorted=False)
        output, (hidden, _) = self.rnn(packed)
        output, _ = nn.utils.rnn.pad_packed_sequence(output, batch_first=True,
                                                     total_length=captions.shape[1])
        words = output.transpose(1, 2)
        sentence = hidden.transpose(0, 1).reshape(captions.shape[0], -1)
        return words, sentence


# --- torchvision Inception-v3 trunk and AttnGAN CNN_ENCODER ----------------------------

class BasicConv2d(nn.Module):
    def __init__(self, cin, cout, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=padding,
                              bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


def _avg_pool_3x3(x):
    # Padding counted in the average, as torchvision does.
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1)


class InceptionA(nn.Module):
    def __init__(self, cin, pool_features):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, 1)
        self.branch5x5_1 = BasicConv2d(cin, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, 1)

    def forward(self, x):
        a = self.branch1x1(x)
        b = self.branch5x5_2(self.branch5x5_1(x))
        c = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        d = self.branch_pool(_avg_pool_3x3(x))
        return torch.cat([a, b, c, d], 1)


class InceptionB(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x):
        a = self.branch3x3(x)
        b = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([a, b, F.max_pool2d(x, 3, 2)], 1)


class InceptionC(nn.Module):
    def __init__(self, cin, c7):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 192, 1)
        self.branch7x7_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x):
        a = self.branch1x1(x)
        b = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        c = x
        for i in range(1, 6):
            c = getattr(self, f"branch7x7dbl_{i}")(c)
        d = self.branch_pool(_avg_pool_3x3(x))
        return torch.cat([a, b, c, d], 1)


class InceptionD(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x):
        a = self.branch3x3_2(self.branch3x3_1(x))
        b = x
        for i in range(1, 5):
            b = getattr(self, f"branch7x7x3_{i}")(b)
        return torch.cat([a, b, F.max_pool2d(x, 3, 2)], 1)


class InceptionE(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 320, 1)
        self.branch3x3_1 = BasicConv2d(cin, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x):
        a = self.branch1x1(x)
        s = self.branch3x3_1(x)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        return torch.cat([a, self.branch3x3_2a(s), self.branch3x3_2b(s),
                          self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d),
                          self.branch_pool(_avg_pool_3x3(x))], 1)


class CNNEncoder(nn.Module):
    """The Inception-v3 trunk modules as attributes, plus the two DAMSM projections."""

    def __init__(self, nef=256):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = InceptionA(192, 32)
        self.Mixed_5c = InceptionA(256, 64)
        self.Mixed_5d = InceptionA(288, 64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, 128)
        self.Mixed_6c = InceptionC(768, 160)
        self.Mixed_6d = InceptionC(768, 160)
        self.Mixed_6e = InceptionC(768, 192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280)
        self.Mixed_7c = InceptionE(2048)
        self.emb_features = nn.Conv2d(768, nef, 1, bias=False)
        self.emb_cnn_code = nn.Linear(2048, nef)

    def trunk(self, x):
        """299 px images [B, 3, 299, 299] -> (Mixed_6e [B, 768, 17, 17], Mixed_7c)."""
        for name in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3"):
            x = getattr(self, name)(x)
        x = F.max_pool2d(x, 3, 2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, 3, 2)
        for name in ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c",
                     "Mixed_6d", "Mixed_6e"):
            x = getattr(self, name)(x)
        mixed_6e = x
        for name in ("Mixed_7a", "Mixed_7b", "Mixed_7c"):
            x = getattr(self, name)(x)
        return mixed_6e, x

    def forward(self, images):
        """images [B, 3, S, S] in [-1, 1] -> (regions [B, nef, 17, 17], code [B, nef])."""
        x = F.interpolate(images, size=(299, 299), mode="bilinear", align_corners=False)
        mixed_6e, mixed_7c = self.trunk(x)
        code = self.emb_cnn_code(F.avg_pool2d(mixed_7c, kernel_size=8).flatten(1))
        return self.emb_features(mixed_6e), code


# --- SSA-GAN NetG -----------------------------------------------------------------------

def _mask_predictor(cin, hidden=100):
    return nn.Sequential(nn.Conv2d(cin, hidden, 3, 1, 1), nn.BatchNorm2d(hidden), nn.ReLU(),
                         nn.Conv2d(hidden, 1, 1, 1, 0))


def _mlp(cond_dim, out):
    return nn.Sequential(collections.OrderedDict([
        ("linear1", nn.Linear(cond_dim, 256)), ("relu1", nn.ReLU()),
        ("linear2", nn.Linear(256, out))]))


class SSCBN(nn.Module):
    """SSA-GAN's `affine`: BN(no affine) * (1 + m * gamma(s)) + m * beta(s)."""

    def __init__(self, channels, cond_dim=256):
        super().__init__()
        self.batch_norm2d = nn.BatchNorm2d(channels, affine=False)
        self.fc_gamma = _mlp(cond_dim, channels)
        self.fc_beta = _mlp(cond_dim, channels)

    def forward(self, x, sentence, mask):
        gamma = self.fc_gamma(sentence)[:, :, None, None]
        beta = self.fc_beta(sentence)[:, :, None, None]
        return self.batch_norm2d(x) * (1 + mask * gamma) + mask * beta


class GBlock(nn.Module):
    def __init__(self, cin, cout, cond_dim=256, predict_mask=True, mask_channels=100):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.affine0 = SSCBN(cin, cond_dim)
        self.affine2 = SSCBN(cout, cond_dim)
        self.gamma = nn.Parameter(torch.zeros(1))
        self.has_shortcut_conv = cin != cout
        if self.has_shortcut_conv:
            self.c_sc = nn.Conv2d(cin, cout, 1)
        self.predict_mask = predict_mask
        if predict_mask:
            self.conv_mask = _mask_predictor(cout, mask_channels)

    def forward(self, x, sentence, mask):
        h = self.c1(F.relu(self.affine0(x, sentence, mask)))
        h = self.c2(F.relu(self.affine2(h, sentence, mask)))
        out = (self.c_sc(x) if self.has_shortcut_conv else x) + self.gamma * h
        return out, (self.conv_mask(out) if self.predict_mask else None)


# (in, out) width multipliers of block0..block6; a generator of n blocks keeps the
# first n and the last one predicts no mask (7 blocks: the reference at 256 px).
_WIDTHS = ((8, 8), (8, 8), (8, 8), (8, 8), (8, 4), (4, 2), (2, 1))


class NetG(nn.Module):
    def __init__(self, ngf=64, nz=100, num_blocks=7, cond_dim=256, mask_channels=100):
        super().__init__()
        self.ngf = ngf
        self.num_blocks = num_blocks
        self.conv_mask = _mask_predictor(8 * ngf, mask_channels)
        self.fc = nn.Linear(nz, 8 * ngf * 4 * 4)
        for i, (a, b) in enumerate(_WIDTHS[:num_blocks]):
            setattr(self, f"block{i}", GBlock(a * ngf, b * ngf, cond_dim,
                                              predict_mask=i < num_blocks - 1,
                                              mask_channels=mask_channels))
        out_channels = _WIDTHS[num_blocks - 1][1] * ngf
        self.conv_img = nn.Sequential(nn.BatchNorm2d(out_channels), nn.LeakyReLU(0.2),
                                      nn.Conv2d(out_channels, 3, 3, 1, 1), nn.Tanh())

    def forward(self, z, sentence):
        """z [B, nz], sentence [B, 256] -> (images [B, 3, S, S], masks [B, 1, s, s] list)."""
        x = self.fc(z).view(z.shape[0], 8 * self.ngf, 4, 4)
        logits = self.conv_mask(x)
        masks = []
        for i in range(self.num_blocks):
            if i > 0:
                x = F.interpolate(x, scale_factor=2)
                logits = F.interpolate(logits, size=x.shape[2:], mode="bilinear",
                                       align_corners=True)
            mask = torch.sigmoid(logits)
            masks.append(mask)
            x, logits = getattr(self, f"block{i}")(x, sentence, mask)
        return self.conv_img(x), masks


# --- Helpers ----------------------------------------------------------------------------

def randomize(module: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights everywhere (He-scaled convs, random BN statistics), eval mode.

    Zero-initialised reference parameters (SSA-GAN's gamma and last MLP layers) become
    non-zero too, so that every converted tensor influences the output.
    """
    generator = torch.Generator().manual_seed(seed)

    def uniform(shape, low, high):
        return low + (high - low) * torch.rand(shape, generator=generator)

    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var"):
                tensor.copy_(uniform(tensor.shape, 0.5, 1.5))
            elif name.endswith("running_mean"):
                tensor.copy_(0.1 * torch.randn(tensor.shape, generator=generator))
            elif name.endswith("gamma"):
                tensor.copy_(uniform(tensor.shape, 0.5, 1.0))
            elif tensor.dim() >= 2:
                # He scaling for convolutions keeps activations O(1) through ReLU stacks.
                fan_in = int(np.prod(tensor.shape[1:]))
                gain = 2.0 if tensor.dim() == 4 else 1.0
                tensor.copy_(torch.randn(tensor.shape, generator=generator)
                             * np.sqrt(gain / fan_in))
            elif name.endswith(".bn.weight") or ".1.weight" in name or "conv_img.0" in name:
                tensor.copy_(uniform(tensor.shape, 0.8, 1.2))
            else:
                tensor.copy_(0.1 * torch.randn(tensor.shape, generator=generator))
    return module.eval()


def calibrate_batch_norm(module: nn.Module, *inputs, seed: int = 0) -> nn.Module:
    """Sets BatchNorm running statistics from one training-mode pass, then perturbs them.

    Random statistics that ignore the activations let a deep residual stack (SSA-GAN's
    seven blocks) grow its activations into the hundreds, where float32 itself differs
    from float64 by more than the comparison's tolerance. Statistics measured on a
    batch, as a trained checkpoint has, keep every layer O(1); the +-20% perturbation
    keeps them distinct from the test batch's own statistics.
    """
    generator = torch.Generator().manual_seed(seed)
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average: one pass sets the batch statistics
    module.train()
    with torch.no_grad():
        module(*inputs)
        for norm in norms:
            scale = 0.8 + 0.4 * torch.rand(norm.running_var.shape, generator=generator)
            norm.running_var.mul_(scale)
            norm.running_mean.add_(0.2 * norm.running_var.sqrt()
                                   * (torch.rand(norm.running_mean.shape, generator=generator)
                                      - 0.5))
            norm.momentum = 0.1
    return module.eval()


def save_state_dict(module: nn.Module, path: str, prefix: str = "") -> str:
    """`torch.save(state_dict)` with an optional key prefix (`module.` of DataParallel)."""
    state = collections.OrderedDict((prefix + k, v) for k, v in module.state_dict().items())
    torch.save(state, path)
    return path


def relative_error(got, want) -> float:
    """max |got - want| / max |want|: the error relative to the output's scale."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-12))
