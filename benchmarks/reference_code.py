"""The authors' code (IDSIA/fpainter, its code/ folder) as a benchmark baseline: their classes imported from a
folder the user names (none of it is copied here), at the CelebA preset, and the work of one of their training
steps re-expressed around those classes.

    git clone https://github.com/IDSIA/fpainter; python -m benchmarks.<name> --reference-code=fpainter/code

Their generator needs none of painter.py's other imports (missing ones are stubbed); their discriminator needs
einops and kornia (`pip install einops kornia`; not dependencies of this project).
"""

import sys
import types

import torch

from fpa_plugin.core.lightgan import gradient_penalty

# Their main.py defaults (64x64) and the CelebA preset of the paper (Table 3).
GENERATOR_KWARGS = dict(image_size=64, latent_dim=128, mini_latent_dim=8, mini_input_size=128, rnn_hidden_size=1024,
                        num_layers=2, num_decoding_steps=64, out_tanh=True, use_softmax=True)
DISCRIMINATOR_KWARGS = dict(image_size=64, fmap_max=512, attn_res_layers=[32], disc_output_size=1)
GP_WEIGHT, GP_EVERY, ADAM = 10, 4, dict(lr=2e-4, betas=(0.5, 0.9))

#----------------------------------------------------------------------------

STUBBED = set()                                                         # modules replaced by stubs here


def _stub_attribute(name):
    if name.startswith('__'):
        raise AttributeError(name)
    return lambda *args, **kwargs: None


def import_painter(code_dir, need=()):
    """Their painter.py as a module. Packages it imports but the classes used here do not need are stubbed when
    absent; those in `need` must be installed."""
    for name in ['einops', 'kornia', 'kornia.filters', 'torchvision', 'torchvision.transforms', 'tqdm']:
        try:
            __import__(name)
            missing = name in STUBBED
        except ImportError:
            missing = True
        if missing and name.split('.')[0] in need:
            raise SystemExit(f"The authors' code needs {name} here: pip install {' '.join(need)}")
        if missing and name not in STUBBED:
            stub = types.ModuleType(name)
            stub.__path__ = []                                          # a package, so submodules can be stubbed
            stub.__getattr__ = _stub_attribute
            sys.modules[name] = stub
            STUBBED.add(name)
    if code_dir not in sys.path:
        sys.path.insert(0, code_dir)
    cuda = torch.cuda.is_available
    torch.cuda.is_available = lambda: True                              # their lightweight_gan.py asserts a GPU
    try:
        import painter                                                  # noqa: E402  (their painter.py)
    finally:
        torch.cuda.is_available = cuda
    return painter


def generator(code_dir, device):
    """LSTMDeltaTimeSplitLatentGeneratorV2 at the CelebA preset."""
    return import_painter(code_dir).LSTMDeltaTimeSplitLatentGeneratorV2(**GENERATOR_KWARGS).to(device)


def discriminator(code_dir, device):
    """Their Discriminator with main.py's defaults at 64x64, as their trainer builds it for the FPA models: blur
    off (init_GAN rebinds painter.Blur to nn.Identity for antialias=False) and their GAN class's initialisation."""
    painter = import_painter(code_dir, need=('einops', 'kornia'))
    painter.Blur = torch.nn.Identity
    D = painter.Discriminator(**DISCRIMINATOR_KWARGS)
    D.apply(lambda m: painter.PainterLSTMDeltaTimeSplitLatentGAN._init_weights(None, m))
    return D.to(device)

#----------------------------------------------------------------------------

class TrainingStep:
    """The arithmetic of one step of their trainer (painter.py's train()) as their README's CelebA command runs it
    (batch 20, no gradient accumulation; main.py's defaults otherwise: no augmentation, no mixed precision), written
    out around their modules and loss functions. D: fakes painted without grad, hinge loss on the main and 32x32
    logits of fakes and of reals, the reconstruction loss on reals, every GP_EVERY-th step the 1-centred gradient
    penalty on reals (a double backward); Adam. G: a painted batch through D, their generator loss on both logits;
    Adam."""

    def __init__(self, code_dir, batch, device):
        self.painter = import_painter(code_dir)
        self.D, self.G = discriminator(code_dir, device), generator(code_dir, device)
        self.G_opt = torch.optim.Adam(self.G.parameters(), **ADAM)
        self.D_opt = torch.optim.Adam(self.D.parameters(), **ADAM)
        self.batch, self.device, self.steps = batch, device, 0

    def __call__(self, reals):
        """One D step and one G step on reals: (batch, 3, 64, 64)."""
        hinge, gen_loss = self.painter.hinge_loss, self.painter.gen_ce_loss
        G, D = self.G.train(), self.D.train()
        latent = lambda: torch.randn(self.batch, GENERATOR_KWARGS['latent_dim'], device=self.device)

        self.D_opt.zero_grad()
        reals = reals.to(self.device).requires_grad_()
        with torch.no_grad():
            fakes = G(latent())
        fake_out, fake_out32, _ = D(fakes)
        real_out, real_out32, aux = D(reals, calc_aux_loss=True)
        loss = hinge(real_out, fake_out) + hinge(real_out32, fake_out32) + aux
        if self.steps % GP_EVERY == 0:
            ones = [torch.ones_like(real_out), torch.ones_like(real_out32)]
            grad, = torch.autograd.grad([real_out, real_out32], reals, ones, create_graph=True)
            loss = loss + GP_WEIGHT * gradient_penalty(grad)                # the same 1-centred penalty
        loss.backward()
        self.D_opt.step()

        self.G_opt.zero_grad()
        fake_out, fake_out32, _ = D(G(latent()))
        (gen_loss(fake_out, None) + gen_loss(fake_out32, None)).backward()
        self.G_opt.step()
        self.steps += 1
