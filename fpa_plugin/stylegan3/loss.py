"""The LightGAN loss as the FPA paper's code trains it, as a StyleGAN3 `Loss` (reference doc, section 4b).

    D: hinge(main head) + hinge(32x32 head) + reconstruction MSE on reals
       [+ gp_weight * mean (||grad_x D(x_real)|| - 1)^2 every gp_interval-th step, added unscaled, as the reference]
    G: -(mean main head + mean 32x32 head) on fakes

StyleGAN3's sign convention (high = real). The phases are 'Gboth' and 'Dboth' (no lazy regularisation phase:
the reference adds its penalty to the D step itself, with the same learning rate and betas).
"""

import torch

from torch_utils import training_stats
from training.loss import Loss

from fpa_plugin.core.lightgan import generator_loss, gradient_penalty, hinge_d

#----------------------------------------------------------------------------

class LightGANLoss(Loss):
    def __init__(self, device, G, D, augment_pipe=None,
        batch_size      = 20,       # Images per training step (to count steps from cur_nimg).
        gp_weight       = 10,       # Weight of the 1-centred gradient penalty on reals, 0 = off.
        gp_interval     = 4,        # Apply the penalty every N-th step.
        hinge_scale     = 1,        # Scale of D's hinge terms (0.5 = the reference's U-Net stage).
        recon_weight    = 1,        # Weight of D's self-supervised reconstruction loss.
    ):
        super().__init__()
        self.device, self.G, self.D, self.augment_pipe = device, G, D, augment_pipe
        self.batch_size, self.gp_weight, self.gp_interval = batch_size, gp_weight, gp_interval
        self.hinge_scale, self.recon_weight = hinge_scale, recon_weight

    def run_D(self, img, c):
        if self.augment_pipe is not None:
            img = self.augment_pipe(img)
        return self.D.heads(img, c)

    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, gain, cur_nimg):
        assert phase in ['Gmain', 'Greg', 'Gboth', 'Dmain', 'Dreg', 'Dboth']
        step = cur_nimg // self.batch_size

        if phase in ['Gmain', 'Gboth']:
            with torch.autograd.profiler.record_function('Gmain_forward'):
                logits, logits32, _ = self.run_D(self.G(gen_z, gen_c), gen_c)
                training_stats.report('Loss/scores/fake', logits)
                training_stats.report('Loss/signs/fake', logits.sign())
                loss = generator_loss(logits) + generator_loss(logits32)
                training_stats.report('Loss/G/loss', loss)
            with torch.autograd.profiler.record_function('Gmain_backward'):
                loss.mul(gain).backward()

        if phase in ['Dmain', 'Dboth']:
            do_gp = self.gp_weight > 0 and step % self.gp_interval == 0
            with torch.autograd.profiler.record_function('Dmain_forward'):
                with torch.no_grad():
                    gen_img = self.G(gen_z, gen_c)
                fake, fake32, _ = self.run_D(gen_img, gen_c)
                real_img = real_img.detach().requires_grad_(do_gp)
                real, real32, feats = self.run_D(real_img, real_c)
                training_stats.report('Loss/scores/fake', fake)
                training_stats.report('Loss/signs/fake', fake.sign())
                training_stats.report('Loss/scores/real', real)
                training_stats.report('Loss/signs/real', real.sign())
                hinge, hinge32 = hinge_d(real, fake), hinge_d(real32, fake32)
                recon = self.D.reconstruction_loss(real_img, feats)
                loss = self.hinge_scale * (hinge + hinge32) + self.recon_weight * recon
                training_stats.report('Loss/D/hinge', hinge)
                training_stats.report('Loss/D/hinge32', hinge32)
                training_stats.report('Loss/D/recon', recon)
            gp = []
            if do_gp:
                with torch.autograd.profiler.record_function('Dgp_forward'):
                    grad, = torch.autograd.grad(real.sum() + real32.sum(), real_img, create_graph=True)
                    gp = gradient_penalty(grad)
                    loss = loss + self.gp_weight * gp
            training_stats.report('Loss/D/gp', gp)
            training_stats.report('Loss/D/loss', loss)
            with torch.autograd.profiler.record_function('Dmain_backward'):
                loss.mul(gain).backward()

#----------------------------------------------------------------------------
