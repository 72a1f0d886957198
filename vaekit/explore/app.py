"""The explorer's page: Gradio components wired to :mod:`vaekit.explore.compute`.

Private and offline by default: the server binds 127.0.0.1, makes no share link, sends no
analytics, checks no updates, keeps no run history, serves no monitoring page or MCP
server, and uses the fonts bundled with Gradio. The pictures Gradio writes to serve them
go to a folder of the explorer's own (:func:`temp_dir`, private to the user), removed when
it stops, not to Gradio's shared ``<tmp>/gradio``. Every handler catches its errors and shows
them in the page (a message under the tab's picture), so a bad path or upload never kills
the server or shows a traceback.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import sys
import tempfile
import traceback
from collections.abc import Callable, Sequence

import torch

from . import compute
from .images import ExploreError, fit_images, read_image, to_display
from .runs import TEST_IMAGES, Explorer, Run

__all__ = [
    "COMPARE",
    "PRIVACY_ENV",
    "RATIO_NOTE",
    "SLIDERS",
    "TEMP_PREFIX",
    "build_app",
    "launch",
    "launch_kwargs",
    "remove_temp_dir",
    "temp_dir",
]

SLIDERS = 8  # latent sliders shown: the units with the most KL
COMPARE = 4  # runs with pictures side by side in "Compare runs" (the table takes them all)
SPAN = 4.0  # slider range: +-4 prior standard deviations (wider when a code lies outside)
PRIVACY_ENV = {
    "GRADIO_ANALYTICS_ENABLED": "False",  # no telemetry, no version check (Gradio's switch)
    "HF_HUB_OFFLINE": "1",  # huggingface_hub, imported by Gradio: never reach the Hub
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
}
TEMP_PREFIX = "vaekit-explore-"  # <tmp>/vaekit-explore-XXXXXXXX: the pictures Gradio serves
_OWN_TEMP: list[str] = []  # the folder this process made (and removes), if any
CSS = ".pixelated img { image-rendering: pixelated; }"
RATIO_NOTE = (
    "↑ higher is better, ↓ lower, →1 nearest 1. Sharpness ratio: the variance of the "
    "Laplacian of reconstructions or samples over that of the real test images (below 1: "
    "blurrier); contrast ratio: their pixel standard deviations (below 1: fainter). "
    "spectrum.png in each run folder shows where in frequency the detail is missing."
)


def temp_dir() -> str:
    """The folder Gradio writes the rendered pictures and uploads to (``GRADIO_TEMP_DIR``).

    Gradio's default is ``<tmp>/gradio``, shared by every Gradio app of every user and never
    emptied. The explorer makes its own, ``<tmp>/vaekit-explore-XXXXXXXX`` (``<tmp>`` is
    ``$TMPDIR``, else ``/tmp``; readable by this user only), and removes it when it stops
    (:func:`remove_temp_dir`, also at exit). A ``GRADIO_TEMP_DIR`` set by the user is used
    as it is and never removed. Called before Gradio is imported, since parts of it read the
    variable at import.
    """
    given = os.environ.get("GRADIO_TEMP_DIR")
    if given and given not in _OWN_TEMP:
        return given
    if _OWN_TEMP and os.path.isdir(_OWN_TEMP[-1]):
        return _OWN_TEMP[-1]
    path = tempfile.mkdtemp(prefix=TEMP_PREFIX)
    _OWN_TEMP.append(path)
    os.environ["GRADIO_TEMP_DIR"] = path
    return path


@atexit.register
def remove_temp_dir() -> None:
    """Remove the folder :func:`temp_dir` made (a user's ``GRADIO_TEMP_DIR`` is kept)."""
    while _OWN_TEMP:
        path = _OWN_TEMP.pop()
        shutil.rmtree(path, ignore_errors=True)
        if os.environ.get("GRADIO_TEMP_DIR") == path:
            del os.environ["GRADIO_TEMP_DIR"]


def _gradio():
    """Import Gradio with its network switches off and its files in :func:`temp_dir`."""
    os.environ.update(PRIVACY_ENV)
    temp_dir()
    try:
        import gradio as gr
    except ImportError as err:
        raise ImportError(
            'the explorer needs Gradio: pip install -e ".[explore]" (or pip install gradio)'
        ) from err
    return gr


def _warn(text: str) -> str:
    return f"⚠️ {text}"


def _guard(fn: Callable, outputs: int, message: int) -> Callable:
    """Run ``fn``; on an error leave every output as it is and put the error's text in output
    ``message``. Bugs are printed to the terminal (the page gets a one-line note)."""
    import gradio as gr

    @functools.wraps(fn)
    def wrapper(*args):
        try:
            return fn(*args)
        except (ExploreError, ValueError, TypeError, OSError) as err:
            text = _warn(str(err))
        except Exception as err:  # a bug: keep the server alive, say where the details are
            traceback.print_exc(file=sys.stderr)
            text = _warn(f"internal error ({type(err).__name__}: {err}); details in the terminal")
        out = [gr.skip()] * outputs
        out[message] = text
        return tuple(out) if outputs > 1 else out[0]

    return wrapper


# -- picking images -------------------------------------------------------------------------------
def _pick(
    ex: Explorer, run: Run, index: float | None, upload: str | None
) -> tuple[torch.Tensor, str]:
    """One model-sized image: the upload if there is one, else test image ``index``."""
    if upload:
        x = read_image(upload, run.channels, run.image_size)
        return x, f"the uploaded image {os.path.basename(upload)!r}"
    test = ex.test_images(run.name)
    if test.images is None:
        raise ExploreError(test.source)
    i = min(max(int(index or 0), 0), len(test.images) - 1)
    return test.images[i : i + 1], f"test image {i} of {len(test.images)} ({test.source})"


def _flat_value(z: torch.Tensor, unit: int) -> float:
    return round(float(z[0, unit]), 2)


def _slider_setup(run: Run, kl: torch.Tensor, z: torch.Tensor) -> dict:
    """Which units get sliders and where they start (the latent tab's state)."""
    units = compute.top_units(kl, min(SLIDERS, run.vae.latent_shape[0]))
    starts = [0.0 if run.spatial else _flat_value(z, u) for u in units]
    return {"run": run.name, "z": z, "units": units, "starts": starts, "kl": kl}


def _moved(state: dict, values: Sequence[float]) -> tuple[list[int], list[float]]:
    """Units whose slider left its start: only those are changed, so an untouched slider
    keeps the code's exact value (a slider holds it rounded to its step)."""
    units, moved = [], []
    for u, start, v in zip(state["units"], state["starts"], values):
        if v is not None and abs(float(v) - start) > 1e-9:
            units.append(u)
            moved.append(float(v))
    return units, moved


def build_app(ex: Explorer, *, messages: Sequence[str] = ()):
    """The page for the runs of ``ex``: a model picker and five tabs.

    Args:
        ex: the :class:`~vaekit.explore.Explorer` holding the loaded runs.
        messages: notes for the top of the page (e.g. paths that failed to open).

    Returns:
        a ``gradio.Blocks``; :func:`launch` serves it.
    """
    gr = _gradio()
    names = ex.names
    first = names[0] if names else None

    def picture(label: str, elem_id: str, **kw):
        return gr.Image(
            label=label, elem_id=elem_id, type="numpy", format="png", interactive=False,
            buttons=["download", "fullscreen"], elem_classes="pixelated", **kw,
        )  # fmt: skip

    def index(label: str, elem_id: str, value: int = 0):
        return gr.Slider(0, TEST_IMAGES - 1, value, step=1, label=label, elem_id=elem_id)

    def file(label: str, elem_id: str):
        return gr.File(label=label, type="filepath", elem_id=elem_id, height=120)

    def temperature_slider(elem_id: str, **kw):
        return gr.Slider(0.0, 2.0, 1.0, step=0.05, label="temperature", elem_id=elem_id, **kw)

    def seed_box(elem_id: str, **kw):
        return gr.Number(0, precision=0, minimum=0, label="seed", elem_id=elem_id, **kw)

    blocks = gr.Blocks(title="vaekit explorer", analytics_enabled=False, delete_cache=(3600, 3600))
    with blocks as demo:
        gr.Markdown("## vaekit latent explorer")
        with gr.Row():
            model = gr.Dropdown(names, value=first, label="model", elem_id="model", scale=2)
            path_box = gr.Textbox(
                label="open another run folder or .safetensors file", elem_id="open-path",
                placeholder="runs/20261130-220250-fmnist32", scale=3,
            )  # fmt: skip
            open_btn = gr.Button("Open", elem_id="open-button", scale=0)
        info = gr.Markdown(elem_id="run-info")
        open_msg = gr.Markdown("\n\n".join(_warn(m) for m in messages), elem_id="open-message")

        with gr.Tabs():
            with gr.Tab("Samples", id="samples", elem_id="tab-samples"):
                with gr.Row():
                    temperature = temperature_slider("temperature")
                    seed = seed_box("seed")
                    count = gr.Slider(1, 64, 16, step=1, label="count", elem_id="count")
                samples_img = picture("samples from the prior", "samples-image")
                samples_msg = gr.Markdown(elem_id="samples-message")

            with gr.Tab("Latent sliders", id="latent", elem_id="tab-latent"):
                l_state = gr.State(None)
                with gr.Row():
                    with gr.Column(scale=1):
                        l_index = index("test image", "latent-index")
                        l_input = picture("image", "latent-input")
                        l_upload = file("or upload an image", "latent-upload")
                    with gr.Column(scale=2):
                        l_image = picture("decoded code", "latent-image")
                        l_msg = gr.Markdown(elem_id="latent-message")
                        sliders = []
                        for row in range(0, SLIDERS, 4):
                            with gr.Row():
                                sliders += [
                                    gr.Slider(-SPAN, SPAN, 0.0, step=0.05, label=f"unit {i}",
                                              elem_id=f"latent-slider-{i}", min_width=120)
                                    for i in range(row, min(row + 4, SLIDERS))
                                ]  # fmt: skip
                        with gr.Row():
                            t_unit = gr.Dropdown([], label="traverse", elem_id="traversal-unit")
                            t_btn = gr.Button("Traversal grid", elem_id="traversal-button")
                            reset_btn = gr.Button("Reset sliders", elem_id="reset-button")
                t_image = picture("traversal from -3 to +3", "traversal-image")

            with gr.Tab("Interpolation", id="interpolation", elem_id="tab-interpolation"):
                with gr.Row():
                    with gr.Column():
                        i_index_a = index("first test image", "interp-index-a")
                        i_upload_a = file("or upload the first", "interp-upload-a")
                    with gr.Column():
                        i_index_b = index("second test image", "interp-index-b", 1)
                        i_upload_b = file("or upload the second", "interp-upload-b")
                with gr.Row():
                    i_method = gr.Radio(
                        ["slerp", "linear"], value="slerp", label="path", elem_id="interp-method"
                    )
                    i_steps = gr.Slider(2, 16, 8, step=1, label="steps", elem_id="interp-steps")
                i_image = picture("first image, path, second image", "interp-image")
                i_msg = gr.Markdown(elem_id="interp-message")

            with gr.Tab("Reconstruction", id="reconstruction", elem_id="tab-reconstruction"):
                with gr.Row():
                    r_index = index("test image", "recon-index")
                    r_upload = file("or upload an image", "recon-upload")
                r_image = picture("image | reconstruction | absolute error", "recon-image")
                r_msg = gr.Markdown(elem_id="recon-message")

            with gr.Tab("Compare runs", id="compare", elem_id="tab-compare"):
                with gr.Row():
                    c_runs = gr.CheckboxGroup(
                        names, value=names, label="runs", elem_id="compare-runs", scale=3
                    )
                    c_seed = seed_box("compare-seed", scale=1)
                    c_temp = temperature_slider("compare-temperature", scale=1)
                c_msg = gr.Markdown(elem_id="compare-message")
                c_table = gr.Markdown(elem_id="compare-table")
                with gr.Accordion("all metrics", open=False):
                    c_table_all = gr.Markdown(elem_id="compare-table-all")
                c_pictures = []
                for i in range(COMPARE):
                    with gr.Row():
                        c_pictures += [
                            picture("samples", f"compare-samples-{i}", visible=i == 0),
                            picture("reconstructions", f"compare-recons-{i}", visible=i == 0),
                        ]
                c_curves = gr.Image(
                    label="training curves (history.csv)", type="numpy", format="png",
                    interactive=False, buttons=["download", "fullscreen"], elem_id="compare-curves",
                )  # fmt: skip

        # -- handlers (closures over ex) ------------------------------------------------------
        def show_info(name):
            if not ex.names:
                text = "No model loaded: open a run folder or a `.safetensors` file above."
                return text, *[gr.skip()] * len(index_sliders)
            run = ex.get(name)
            test = ex.test_images(name)
            notes = "".join(f"\n- {n}" for n in run.notes)
            top = max(1, len(test.images) - 1) if test.images is not None else TEST_IMAGES - 1
            limits = [gr.Slider(maximum=top) for _ in index_sliders]
            return f"{run.describe()}. Test images: {test.source}.{notes}", *limits

        def show_samples(name, t, s, n):
            run = ex.get(name)
            images = compute.sample(run.vae, int(n), float(t), int(s or 0))
            return to_display(images, nrow=8, tile=64), ""

        def pick_latent(name, index, upload):
            run = ex.get(name)
            x, what = _pick(ex, run, index, upload)
            z = compute.encode(run.vae, x)
            kl = ex.kl_ranking(name)
            if kl is None:  # no test images: rank the units by this image's own KL
                kl = compute.unit_kl(run.vae, x)
            state = _slider_setup(run, kl, z)
            updates = []
            for i in range(SLIDERS):
                if i < len(state["units"]):
                    u, start = state["units"][i], state["starts"][i]
                    kl = float(state["kl"][u])
                    label = (
                        f"channel {u} offset (KL {kl:.2f})"
                        if run.spatial
                        else f"z[{u}] (KL {kl:.2f})"
                    )
                    lo, hi = min(-SPAN, start - 0.5), max(SPAN, start + 0.5)
                    updates.append(
                        gr.Slider(minimum=lo, maximum=hi, value=start, label=label, visible=True)
                    )
                else:
                    updates.append(gr.Slider(visible=False, value=0.0))
            choices = [(f"{'channel' if run.spatial else 'z'} {u}", u) for u in state["units"]]
            decoded = compute.decode_units(run.vae, z, [], [])
            kind = "per-channel offsets of the spatial code" if run.spatial else "the code's values"
            msg = (
                f"Showing {what}. The sliders hold {kind} for the {len(state['units'])} units with "
                "the most KL (in nats); the decoded picture follows them."
            )
            state["message"] = msg
            return (
                to_display(x),
                to_display(decoded),
                msg,
                state,
                gr.Dropdown(choices=choices, value=state["units"][0]),
                *updates,
            )

        def move(name, state, *values):
            if not state or state.get("run") != name:
                raise ExploreError("pick an image first (the model changed)")
            run = ex.get(name)
            units, moved = _moved(state, values)
            image = compute.decode_units(run.vae, state["z"], units, moved)
            return to_display(image), state.get("message", "")

        def traversal(name, state, unit, *values):
            if not state or state.get("run") != name:
                raise ExploreError("pick an image first (the model changed)")
            if unit is None:
                raise ExploreError("choose a unit to traverse")
            run = ex.get(name)
            units, moved = _moved(state, values)
            z = compute.edit_code(run.vae, state["z"], units, moved)
            images = compute.traverse(run.vae, z, int(unit), span=3.0, steps=9)
            return to_display(images, nrow=9, tile=64), state.get("message", "")

        def reset(state):
            if not state:
                raise ExploreError("pick an image first")
            return [gr.Slider(value=v) for v in state["starts"]] + [gr.skip()] * (
                SLIDERS - len(state["starts"])
            )

        def show_interp(name, ia, ua, ib, ub, method, steps):
            run = ex.get(name)
            xa, what_a = _pick(ex, run, ia, ua)
            xb, what_b = _pick(ex, run, ib, ub)
            images = compute.interpolate(run.vae, xa, xb, steps=int(steps), method=method)
            picture = to_display(images, nrow=len(images), tile=64)
            return picture, f"From {what_a} to {what_b}, {method}."

        def show_recon(name, index, upload):
            run = ex.get(name)
            x, what = _pick(ex, run, index, upload)
            rep = compute.reconstruct(run.vae, x)
            x3 = rep.x.expand(-1, 3, -1, -1) if rep.x.shape[1] == 1 else rep.x
            r3 = rep.recon.expand(-1, 3, -1, -1) if rep.recon.shape[1] == 1 else rep.recon
            picture = to_display(torch.cat([x3, r3, rep.error]), nrow=3, tile=128)
            return picture, f"{what}.\n\n{rep.markdown()}"

        def show_compare(selected, s, t):
            chosen = [n for n in ex.names if n in (selected or [])]
            if not chosen:
                raise ExploreError("choose at least one run (two or more to compare)")
            runs = [ex.get(n) for n in chosen]
            notes = []
            if len(runs) == 1:
                notes.append("Open a second run (the box at the top) to compare.")
            if len(runs) > COMPARE:
                notes.append(f"Pictures of the first {COMPARE} runs; the table has them all.")
            rows = compute.metrics_rows([r.metrics for r in runs])
            head = [r for r in rows if compute.is_headline(r.name)]
            table = compute.metrics_markdown(head, chosen)
            if any(compute.closer_to_one(r.name) for r in head):
                table += "\n\n" + RATIO_NOTE
            table_all = compute.metrics_markdown(rows, chosen)
            if not any(r.metrics for r in runs):
                table = "No metrics.json in these runs (they stopped before their final metrics)."
                table_all = ""
            # the same images for every run: the first run's test images that exist
            base = next(
                (t.images[:8] for t in map(ex.test_images, chosen) if t.images is not None), None
            )
            if base is None:
                notes.append("No test images for reconstructions: start with --images FOLDER.")
            pictures = []
            for i in range(COMPARE):
                if i >= len(runs):
                    pictures += [gr.Image(visible=False, value=None)] * 2
                    continue
                r = runs[i]
                grid = compute.sample(r.vae, 8, float(t), int(s or 0))
                pictures.append(
                    gr.Image(
                        to_display(grid, nrow=4, tile=64),
                        label=f"{r.name}: samples, seed {int(s or 0)}",
                        visible=True,
                    )
                )
                if base is None:
                    pictures.append(gr.Image(visible=False, value=None))
                    continue
                x = fit_images(base, r.channels, r.image_size)
                rec = compute.reconstruct_batch(r.vae, x)
                both = to_display(torch.cat([x, rec]), nrow=len(x), tile=64)
                label = f"{r.name}: test images (top), reconstructions (bottom)"
                pictures.append(gr.Image(both, label=label, visible=True))
            curves = compute.curves_figure([r.history for r in runs], chosen)
            if curves.size == 0:
                curves = None
                notes.append("No history.csv with training curves.")
            return (" ".join(notes), table, table_all, *pictures, curves)

        def open_path(path):
            if not path or not path.strip():
                raise ExploreError("type the path of a run folder or a .safetensors file")
            run = ex.open(path.strip())
            names = ex.names
            return (
                gr.Dropdown(choices=names, value=run.name),
                gr.CheckboxGroup(choices=names, value=names),
                f"Opened {run.name}.",
            )

        # -- events -----------------------------------------------------------------------------
        quick = dict(show_progress="hidden", trigger_mode="always_last")
        start = [demo.load, model.change]
        index_sliders = [l_index, i_index_a, i_index_b, r_index]
        gr.on(start, _guard(show_info, 5, 0), [model], [info, *index_sliders])

        s_in = [model, temperature, seed, count]
        s_out = [samples_img, samples_msg]
        gr.on(
            [*start, temperature.input, count.input, seed.change],
            _guard(show_samples, 2, 1),
            s_in,
            s_out,
            **quick,
        )

        l_outs = [l_input, l_image, l_msg, l_state, t_unit, *sliders]
        gr.on(
            [*start, l_index.input, l_upload.change],
            _guard(pick_latent, len(l_outs), 2),
            [model, l_index, l_upload],
            l_outs,
            **quick,
        )
        for slider in sliders:
            slider.input(_guard(move, 2, 1), [model, l_state, *sliders], [l_image, l_msg], **quick)
        t_btn.click(_guard(traversal, 2, 1), [model, l_state, t_unit, *sliders], [t_image, l_msg])
        reset_btn.click(_guard(reset, SLIDERS, 0), [l_state], sliders).then(
            _guard(move, 2, 1), [model, l_state, *sliders], [l_image, l_msg]
        )

        i_in = [model, i_index_a, i_upload_a, i_index_b, i_upload_b, i_method, i_steps]
        i_triggers = [
            i_index_a.input,
            i_index_b.input,
            i_upload_a.change,
            i_upload_b.change,
            i_method.change,
            i_steps.input,
        ]
        gr.on(start + i_triggers, _guard(show_interp, 2, 1), i_in, [i_image, i_msg], **quick)

        gr.on(
            [*start, r_index.input, r_upload.change],
            _guard(show_recon, 2, 1),
            [model, r_index, r_upload],
            [r_image, r_msg],
            **quick,
        )

        c_out = [c_msg, c_table, c_table_all, *c_pictures, c_curves]
        gr.on(
            [demo.load, c_runs.change, c_seed.change, c_temp.input],
            _guard(show_compare, len(c_out), 0),
            [c_runs, c_seed, c_temp],
            c_out,
            **quick,
        )

        gr.on(
            [open_btn.click, path_box.submit],
            _guard(open_path, 3, 2),
            [path_box],
            [model, c_runs, open_msg],
        )
    return demo


def launch_kwargs(host: str = "127.0.0.1", port: int | None = 7860, *, block: bool = True) -> dict:
    """The arguments of ``Blocks.launch``: local, private, offline.

    Example:
        >>> from vaekit.explore.app import launch_kwargs
        >>> kw = launch_kwargs()
        >>> kw["server_name"], kw["share"], kw["run_history"], kw["enable_monitoring"]
        ('127.0.0.1', False, False, False)
    """
    return dict(
        server_name=host,
        server_port=port,
        share=False,
        inbrowser=False,
        prevent_thread_lock=not block,
        show_error=False,
        footer_links=[],
        run_history=False,
        enable_monitoring=False,
        mcp_server=False,
        ssr_mode=False,
        pwa=False,
        max_file_size="50mb",
        quiet=True,
        css=CSS,
    )


def launch(
    ex: Explorer,
    host: str = "127.0.0.1",
    port: int | None = 7860,
    *,
    block: bool = True,
    messages: Sequence[str] = (),
):
    """Build the page and serve it at ``http://host:port`` (until Ctrl-C when ``block``).

    Rendered pictures go to :func:`temp_dir`, removed when a blocking server stops (and at
    exit, for a non-blocking one).

    Returns:
        the ``gradio.Blocks`` (call ``.close()`` on it to stop a non-blocking server).
    """
    temp_dir()
    demo = build_app(ex, messages=messages)
    demo.queue(default_concurrency_limit=1)
    try:
        demo.launch(**launch_kwargs(host, port, block=block))
    finally:
        if block:
            remove_temp_dir()
    return demo
