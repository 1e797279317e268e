"""ip2p: InstructPix2Pix editing as PortraitGen / Instruct-NeRF2NeRF do it (their ip2p.py edit_image).

The render (`image`) is encoded to VAE latents (a posterior sample), noised with a DDIM scheduler
at timesteps[0] of a schedule whose training length T is drawn uniformly from [t_min, t_max]
(both inclusive, as torch.randint(min, max + 1)), then denoised in `steps` DDIM steps with
three-way classifier-free guidance

    eps = eps(uncond) + guidance·(eps(text) − eps(image)) + image_guidance·(eps(image) − eps(uncond))

where the batch is [text + cond image, "" + cond image, "" + zero image] and the image condition is
the original frame (`source`, else `image`). Everything runs at size × size and is resized back.
The seed of the request seeds every random draw (T, the latent sample and the noise), so a fixed
seed gives the same output. torch on CPU, float32; torch threads from OMP_NUM_THREADS.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import pgplugin  # noqa: E402  (reserves stdout before anything else loads)

import numpy as np  # noqa: E402

for _var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(_var, "1")         # never download at run time, even when run by hand
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

NAME, VERSION = "ip2p", "1.0.0"

# The scheduler PortraitGen and Instruct-NeRF2NeRF use: CompVis/stable-diffusion-v1-4's, as DDIM
SD14_DDIM = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                 clip_sample=False, set_alpha_to_one=False, steps_offset=1, timestep_spacing="leading")

torch = F = DDIMScheduler = StableDiffusionInstructPix2PixPipeline = None


def load_packages():
    """Import torch and diffusers on the first request (a few seconds), so the handshake is quick."""
    global torch, F, DDIMScheduler, StableDiffusionInstructPix2PixPipeline
    if torch is not None:
        return
    try:
        import torch as _torch
        import torch.nn.functional as _F
        from diffusers import DDIMScheduler as _D, StableDiffusionInstructPix2PixPipeline as _P
    except ImportError as exc:
        raise pgplugin.PluginError(
            f"ip2p needs the full plugin environment (torch, diffusers, transformers): "
            f"run bash Scripts/setup-plugins.sh --full ({exc})") from None
    try:                                   # no progress bars in the node's log
        from diffusers.utils import logging as _dlog
        from transformers.utils import logging as _tlog
        _dlog.disable_progress_bar()
        _tlog.disable_progress_bar()
        _tlog.set_verbosity_error()
    except Exception:
        pass
    threads = pgplugin.torch_threads()
    if threads:
        _torch.set_num_threads(threads)
    _torch.set_grad_enabled(False)
    torch, F, DDIMScheduler, StableDiffusionInstructPix2PixPipeline = _torch, _F, _D, _P


class Editor:
    def __init__(self, model):
        self.model = model
        looks_like_path = os.path.isabs(model) or model.startswith((".", "~"))
        if looks_like_path and not os.path.isdir(os.path.expanduser(model)):
            raise pgplugin.PluginError(f"the InstructPix2Pix model folder {model} does not exist")
        try:
            pipe = StableDiffusionInstructPix2PixPipeline.from_pretrained(
                os.path.expanduser(model), torch_dtype=torch.float32, safety_checker=None,
                requires_safety_checker=False, local_files_only=True)
        except Exception as exc:
            if looks_like_path or os.path.isdir(model):
                raise pgplugin.PluginError(f"cannot load the InstructPix2Pix pipeline in {model} "
                                           f"({type(exc).__name__}: {exc})") from None
            cache = os.environ.get("HF_HUB_CACHE") or os.path.join(
                os.environ.get("HF_HOME") or os.path.expanduser("~/.cache/huggingface"), "hub")
            raise pgplugin.PluginError(
                f"the model '{model}' is not a folder and not in the local Hugging Face cache ({cache}); nothing "
                f"is downloaded at run time: fetch it once with `.venv/bin/hf download {model}` or give the "
                f"absolute path of a save_pretrained() folder ({type(exc).__name__})") from None
        self.tokenizer, self.text_encoder = pipe.tokenizer, pipe.text_encoder
        self.unet, self.vae = pipe.unet.eval(), pipe.vae.eval()
        if self.unet.config.in_channels != 2 * self.vae.config.latent_channels:
            raise pgplugin.PluginError(
                f"'{model}' is not an InstructPix2Pix model: its UNet takes {self.unet.config.in_channels} channels, "
                f"not latents plus image latents ({2 * self.vae.config.latent_channels})")
        config = dict(SD14_DDIM)
        config["prediction_type"] = pipe.scheduler.config.get("prediction_type", "epsilon")
        self.scheduler = DDIMScheduler.from_config(config)
        self.scale = float(getattr(self.vae.config, "scaling_factor", 0.18215) or 0.18215)
        self.prompts = {}

    def embeddings(self, prompt):
        """[text, "", ""] encoder states, the order diffusers' pix2pix _encode_prompt gives."""
        if prompt not in self.prompts:
            def encode(text):
                ids = self.tokenizer(text, padding="max_length", max_length=self.tokenizer.model_max_length,
                                     truncation=True, return_tensors="pt").input_ids
                return self.text_encoder(ids)[0]
            uncond = encode("")
            self.prompts = {prompt: torch.cat([encode(prompt), uncond, uncond])}   # keep one
        return self.prompts[prompt]

    def edit(self, image, cond, prompt, guidance, image_guidance, steps, t_min, t_max, seed):
        gen = torch.Generator().manual_seed(seed)
        T = int(torch.randint(t_min, t_max + 1, [1], generator=gen).item())
        if steps > T:
            raise pgplugin.PluginError(f"steps ({steps}) exceeds the drawn schedule length T = {T}")
        # the schedule of length T over the 1000-step alphas, as `scheduler.config.num_train_timesteps = T`
        self.scheduler.register_to_config(num_train_timesteps=T)
        self.scheduler.set_timesteps(steps)
        text = self.embeddings(prompt)
        latents = self.vae.encode(2 * image - 1).latent_dist.sample(generator=gen) * self.scale
        cond_latents = self.vae.encode(2 * cond - 1).latent_dist.mode()
        cond_latents = torch.cat([cond_latents, cond_latents, torch.zeros_like(cond_latents)])
        noise = torch.randn(latents.shape, generator=gen, dtype=latents.dtype)
        latents = self.scheduler.add_noise(latents, noise, self.scheduler.timesteps[0])
        for t in self.scheduler.timesteps:
            model_in = torch.cat([torch.cat([latents] * 3), cond_latents], dim=1)
            eps = self.unet(model_in, t, encoder_hidden_states=text).sample
            eps_text, eps_image, eps_uncond = eps.chunk(3)
            eps = eps_uncond + guidance * (eps_text - eps_image) + image_guidance * (eps_image - eps_uncond)
            latents = self.scheduler.step(eps, t, latents).prev_sample
        out = self.vae.decode(latents / self.scale).sample
        return (out / 2 + 0.5).clamp(0, 1), T


_editor = None


def to_tensor(x, size):
    t = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]
    if t.shape[-2:] != (size, size):
        t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return t


def number(params, key, default, lo=None, hi=None, kind=float):
    value = pgplugin.param(params, key, default)
    try:
        value = kind(value)
    except (TypeError, ValueError):
        raise pgplugin.PluginError(f"{key} must be a number, not {value!r}") from None
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise pgplugin.PluginError(f"{key} must be in {lo}…{hi}, not {value}")
    return value


def edit(image, params, seed, source=None, mask=None):
    global _editor
    load_packages()
    model = pgplugin.param(params, "model", "timbrooks/instruct-pix2pix")
    if not isinstance(model, str) or not model:
        raise pgplugin.PluginError("model must be a folder path or a hub id")
    prompt = pgplugin.param(params, "prompt", "")
    if not isinstance(prompt, str):
        raise pgplugin.PluginError("prompt must be a string")
    guidance = number(params, "guidance", 12.0, 0.0, 100.0)
    image_guidance = number(params, "image_guidance", 2.0, 0.0, 100.0)
    steps = number(params, "steps", 10, 1, 1000, int)
    t_min = number(params, "t_min", 500, 1, 1000, int)
    t_max = number(params, "t_max", 800, 1, 1000, int)
    if t_min > t_max:
        raise pgplugin.PluginError(f"t_min ({t_min}) is above t_max ({t_max})")
    size = number(params, "size", 512, 64, 2048, int)
    if size % 64:
        raise pgplugin.PluginError(f"size must be a multiple of 64, not {size}")
    if _editor is None or _editor.model != model:
        _editor = None
        pgplugin.log(f"ip2p: loading {model}")
        _editor = Editor(model)
    h, w = image.shape[:2]
    cond = source if source is not None else image
    out, T = _editor.edit(to_tensor(image, size), to_tensor(cond, size), prompt, guidance, image_guidance,
                          steps, t_min, t_max, seed % (2 ** 63))
    if out.shape[-2:] != (h, w):
        out = F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False,
                            antialias=out.shape[-1] > w or out.shape[-2] > h)
    return out[0].permute(1, 2, 0).numpy()


if __name__ == "__main__":
    pgplugin.serve(name=NAME, version=VERSION, edit=edit)
