"""Annotate and Review tabs: a campaign's shared queue, keyboard first, and its reviewer's desk.

Annotate: the image, the model's text shaded by token confidence, an edit box with a live word diff,
Ctrl+Enter saves and loads the next task, Alt+S skips, Alt+B goes back; the campaign's progress and
instructions. Review: submissions, disagreements first; approve, reject, edit, or restore an earlier version.
"""
from __future__ import annotations

import io
import os
from typing import Any

import gradio as gr

from .common import handler, plain, probability_highlights
from .correct import DIFF_COLORS

_DIFF_CLASS = {"equal": None, "delete": "removed", "insert": "added"}
ACTIONS = [("Approve", "approve"), ("Reject", "reject"), ("Edit (save my text)", "edit"),
           ("Restore version", "restore")]
REVIEW_COLUMNS = ["task_id", "annotator", "corrected", "status", "version", "word_similarity", "correction_id"]

# Keys, page-wide while the Annotate tab's edit box exists: Ctrl/Cmd+Enter save and next, Alt+S skip, Alt+B back.
KEYS_JS = """
() => {
  if (window.__mmdemoAnnotateKeys) return;
  window.__mmdemoAnnotateKeys = true;
  document.addEventListener('keydown', (e) => {
    const box = document.querySelector('#annotate-text textarea');
    if (!box || box.offsetParent === null) return;           // the Annotate tab is not showing
    let id = null;
    if ((e.ctrlKey || e.metaKey) && e.key === 'Enter') id = 'annotate-save';
    else if (e.altKey && (e.key === 's' || e.key === 'S' || e.code === 'KeyS')) id = 'annotate-skip';
    else if (e.altKey && (e.key === 'b' || e.key === 'B' || e.code === 'KeyB')) id = 'annotate-back';
    if (!id) return;
    e.preventDefault();
    const button = document.getElementById(id);
    if (button) button.click();
  }, true);
}
"""


def _campaign_names(service: Any) -> list[str]:
    try:
        return [c.name for c in service.campaigns()]
    except Exception:  # noqa: BLE001 - the page must load even when the store cannot be read
        return []


def _who(annotator: str, profile: Any) -> str:
    return profile.username if profile is not None else (annotator or "").strip()


def build(service: Any) -> None:
    """The Annotate tab's contents."""
    oauth = bool(os.environ.get("OAUTH_CLIENT_ID"))
    with gr.Row():
        campaign = gr.Dropdown(_campaign_names(service), label="Campaign", allow_custom_value=True, scale=2,
                               elem_id="annotate-campaign")
        annotator = gr.Textbox(label="Annotator" + (" (your Hugging Face name when logged in)" if oauth else ""),
                               max_lines=1, scale=1, elem_id="annotate-annotator")
        start = gr.Button("Start", variant="primary", scale=1, elem_id="annotate-start")
        if oauth:
            gr.LoginButton(scale=1)
    with gr.Accordion("New campaign: upload a zip of images, images, or a COCO file / table with its images",
                      open=False):
        uploads = gr.File(file_count="multiple", label="Images, .zip, COCO .json, .csv or .parquet",
                          file_types=[".zip", "image", ".json", ".csv", ".parquet"], elem_id="campaign-files")
        with gr.Row():
            new_name = gr.Textbox(label="Name", max_lines=1, elem_id="campaign-name")
            models = [c.name for c in service.models()]
            new_model = gr.Dropdown(models, value=service.default_model(), allow_custom_value=True, label="Model",
                                    elem_id="campaign-model")
            new_task = gr.Radio(["caption", "vqa"], value="caption", label="Task", elem_id="campaign-task")
        with gr.Row():
            new_overlap = gr.Number(value=1, minimum=1, maximum=100, precision=0, label="Overlap (annotators per "
                                    "image)", elem_id="campaign-overlap")
            new_order = gr.Radio(["uncertainty", "random", "imported"], value="uncertainty", label="Order",
                                 elem_id="campaign-order")
            new_review = gr.Checkbox(label="Review submissions", elem_id="campaign-review")
        new_questions = gr.Textbox(label="Questions (vqa; one per line)", lines=2, elem_id="campaign-questions")
        new_instructions = gr.Textbox(label="Instructions to annotators", lines=2, elem_id="campaign-instructions")
        create = gr.Button("Create (or refill) campaign", variant="primary", elem_id="campaign-create")
        created = gr.JSON(label="Created", elem_id="campaign-created")
    progress = gr.HTML(elem_id="annotate-progress")
    instructions = gr.Markdown(elem_id="annotate-instructions")
    with gr.Row():
        with gr.Column(scale=1):
            image = gr.Image(type="pil", interactive=False, label="Image", height=320, elem_id="annotate-image")
            word_map = gr.Image(type="pil", interactive=False, label="Where the model looked for the word you "
                                "clicked (attention)", height=320, elem_id="annotate-map")
        with gr.Column(scale=1):
            question = gr.Markdown(elem_id="annotate-question")
            tokens = gr.HighlightedText(label="Model output (darker: the model was more confident)",
                                        show_legend=False, interactive=False, elem_id="annotate-tokens")
            text = gr.Textbox(label="Your correction (Ctrl+Enter: save and next · Alt+S: skip · Alt+B: back)",
                              lines=3, elem_id="annotate-text")
            diff = gr.HighlightedText(label="Word diff (red: removed, green: added)", color_map=DIFF_COLORS,
                                      show_legend=False, show_inline_category=False, interactive=False,
                                      elem_id="annotate-diff")
            with gr.Row():
                back = gr.Button("Back", elem_id="annotate-back")
                skip = gr.Button("Skip", elem_id="annotate-skip")
                save = gr.Button("Save and next", variant="primary", elem_id="annotate-save")
    task_id = gr.Textbox(visible=False, elem_id="annotate-task-id")
    with gr.Accordion("Task (what the API returns)", open=False):
        payload = gr.JSON(label="task")
    clicked = gr.Number(visible=False, precision=0, elem_id="annotate-token")
    outputs = [payload, task_id, image, question, tokens, text, diff, progress, instructions, clicked, word_map]

    def show(name: str, task: Any, saved: str | None = None) -> tuple:
        camp = service.campaign(name)
        counts = service.campaign_counts(name)
        bar = _progress_html(counts)
        notes = f"**Instructions:** {plain(camp.instructions)}" if camp.instructions else ""
        body = {"task": None if task is None else task.to_dict(), "saved": saved, "progress": counts}
        if task is None:
            return (body, "", None, "", None, "", None, bar + "<p>Nothing is left for you in this campaign.</p>",
                    notes, None, None)
        picture = _picture(service, task.image_hash)
        if task.tokens and task.token_probs and len(task.tokens) == len(task.token_probs):
            shaded = probability_highlights(list(zip(task.tokens, task.token_probs)))
        else:
            shaded = [(task.model_output, None)]
        current = task.corrected if task.corrected is not None else task.model_output
        asked = f"**Question:** {plain(task.question)}" if task.question else ""
        return (body, str(task.id), picture, asked, shaded, current, _diff(service, task.model_output, current),
                bar, notes, None, None)

    @handler
    def next_task(name: str, annotator: str, profile: gr.OAuthProfile | None = None) -> tuple:
        """Lease the next task of campaign `name` to `annotator`; returns {task, saved, progress} and the view."""
        who = _require(name, _who(annotator, profile))
        return show(name, service.next_task(name, who))

    @handler
    def submit_task(name: str, annotator: str, task: str, corrected: str,
                    profile: gr.OAuthProfile | None = None) -> tuple:
        """Save `corrected` for task id `task`, then lease the next task."""
        who = _require(name, _who(annotator, profile))
        saved = service.submit_task(_task_id(task), corrected, who)
        return show(name, service.next_task(name, who), saved)

    @handler
    def skip_task(name: str, annotator: str, task: str, profile: gr.OAuthProfile | None = None) -> tuple:
        """Give task id `task` back to the queue (not offered to you again), then lease the next task."""
        who = _require(name, _who(annotator, profile))
        service.skip_task(_task_id(task), who)
        return show(name, service.next_task(name, who))

    @handler
    def previous_task(name: str, annotator: str, task: str, profile: gr.OAuthProfile | None = None) -> tuple:
        """Back: the task you did (or skipped) before task id `task`, with your text to edit."""
        who = _require(name, _who(annotator, profile))
        earlier = service.previous_task(name, who, int(task) if (task or "").strip() else None)
        if earlier is None:
            raise gr.Error("there is nothing earlier to go back to", print_exception=False)
        return show(name, earlier)

    @handler
    def word_map_of(name: str, body: dict | None, token: float | None) -> Any:
        """The attention map of token `token` (an index into the task's tokens; -1: the whole text) over the
        task's image, drawn on it, for the campaign's model."""
        from ..models.base import Target
        from .common import overlay

        task = (body or {}).get("task")
        if token is None:                       # a new task cleared the choice
            return None
        if not task:
            raise gr.Error("no task is open: press Start", print_exception=False)
        picture = _picture(service, task["image_hash"])
        index = int(token) if token is not None else -1
        if task.get("question"):
            target = Target("answer", task["model_output"], question=task["question"])
        elif task.get("tokens") and 0 <= index < len(task["tokens"]):
            target = Target("token", task["model_output"], token=index)
        else:
            target = Target("caption", task["model_output"])
        exp = service.explain(picture, target, service.campaign(name).model, method="attention")
        return overlay(picture, exp.upsampled, "jet", 0.5)

    def pick(evt: gr.SelectData) -> int:
        return int(evt.index) if isinstance(evt.index, int) else int(evt.index[0])

    @handler
    def create_campaign(files: list[str] | None, name: str, model: str, task: str, overlap: float, order: str,
                        review: bool, questions: str, notes: str, progress: gr.Progress = gr.Progress(track_tqdm=True)):
        """Create campaign `name` (or refill it) from uploaded images / zip / COCO / table; the model
        pre-annotates images that come without a text. Returns what was added and the campaign list."""
        import tempfile
        from pathlib import Path

        from ..campaigns import unpack_uploads

        if not files:
            raise gr.Error("upload images, a zip of images, or a COCO file / table first", print_exception=False)
        with tempfile.TemporaryDirectory(prefix="mmdemo-campaign-") as tmp:
            source = unpack_uploads(files, Path(tmp))
            result, resumed = service.create_campaign(
                (name or "").strip(), source, model=model, task=task, overlap=int(overlap or 1), order=order,
                review=bool(review), instructions=notes or "",
                questions=[q.strip() for q in (questions or "").splitlines() if q.strip()])
            body = {**result.to_dict(), "resumed": resumed,      # names as uploaded, not the server's temp paths
                    "unreadable": [{"image": os.path.relpath(u["path"], tmp),
                                    "error": u["error"].replace(tmp + os.sep, "")} for u in result.unreadable]}
        return body, gr.update(choices=_campaign_names(service), value=result.name)

    def live_diff(model_output: dict | None, corrected: str):
        task = (model_output or {}).get("task") or {}
        return _diff(service, task.get("model_output") or "", corrected or "")

    create.click(create_campaign, [uploads, new_name, new_model, new_task, new_overlap, new_order, new_review,
                                   new_questions, new_instructions], [created, campaign], api_name="create_campaign",
                 concurrency_id="model")
    start.click(next_task, [campaign, annotator], outputs, api_name="next_task", concurrency_id="store")
    save.click(submit_task, [campaign, annotator, task_id, text], outputs, api_name="submit_task",
               concurrency_id="store")
    skip.click(skip_task, [campaign, annotator, task_id], outputs, api_name="skip_task", concurrency_id="store")
    back.click(previous_task, [campaign, annotator, task_id], outputs, api_name="previous_task",
               concurrency_id="store")
    tokens.select(pick, None, [clicked], api_visibility="private", api_name="annotate_pick", show_progress="hidden")
    clicked.change(word_map_of, [campaign, payload, clicked], [word_map], api_name="annotate_map",
                   concurrency_id="model", trigger_mode="always_last")
    text.change(live_diff, [payload, text], [diff], api_visibility="private", api_name="annotate_diff",
               show_progress="hidden", trigger_mode="always_last")


def build_review(service: Any, tab: gr.Tab) -> None:
    """The Review tab's contents: the queue, one submission's versions, the verdict, the campaign's figures."""
    with gr.Row():
        campaign = gr.Dropdown(_campaign_names(service), label="Campaign", allow_custom_value=True, scale=2,
                               elem_id="review-campaign")
        reviewer = gr.Textbox(label="Reviewer", max_lines=1, scale=1, elem_id="review-reviewer")
        load = gr.Button("Load queue", scale=1, elem_id="review-load")
    table = gr.Dataframe(headers=REVIEW_COLUMNS, label="Waiting for review (disagreements first)",
                         interactive=False, wrap=True, elem_id="review-table", max_height=320)
    with gr.Row():
        correction = gr.Textbox(label="Correction id (click a row)", max_lines=1, elem_id="review-correction")
        action = gr.Radio(ACTIONS, value="approve", label="Verdict", elem_id="review-action")
        version = gr.Number(label="Version to restore", precision=0, value=1, minimum=1, elem_id="review-version")
    text = gr.Textbox(label="Text (for Edit)", lines=2, elem_id="review-text")
    apply = gr.Button("Apply", variant="primary", elem_id="review-apply")
    submission = gr.JSON(label="Submission and every version", elem_id="review-submission")
    with gr.Accordion("Campaign status and agreement", open=False):
        status_button = gr.Button("Refresh status", elem_id="review-status")
        status = gr.JSON(label="campaign_status", elem_id="review-status-json")
        plot = gr.Plot(label="Annotators: agreement with the others and mean edit rate", elem_id="review-plot")
    with gr.Accordion("Fine-tune on these corrections (admins)", open=False):
        with gr.Row():
            tune_steps = gr.Number(value=200, minimum=1, maximum=5000, precision=0, label="Steps",
                                   elem_id="finetune-steps")
            tune_approved = gr.Checkbox(label="Approved submissions only", elem_id="finetune-approved")
            tune_start = gr.Button("Fine-tune", variant="primary", elem_id="finetune-start")
            tune_refresh = gr.Button("Refresh progress", elem_id="finetune-refresh")
        tune_status = gr.JSON(label="Fine-tuning run (the new model joins the model lists when done)",
                              elem_id="finetune-status")
        tune_timer = gr.Timer(2.0, active=False)

    @handler
    def review_queue(name: str):
        """Submissions waiting for review in campaign `name`, disagreements first, one row per submission."""
        import pandas as pd

        rows = []
        for item in service.review_queue(name):
            for sub in item["submissions"]:
                rows.append({"task_id": item["task_id"], "annotator": sub["annotator"], "corrected": sub["corrected"],
                             "status": sub["status"], "version": sub["version"],
                             "word_similarity": None if item["word_similarity"] is None
                             else round(item["word_similarity"], 3), "correction_id": sub["correction_id"]})
        return pd.DataFrame(rows, columns=REVIEW_COLUMNS)

    @handler
    def review_task(correction_id: str, action: str, reviewer: str, corrected: str, version: float | None,
                    profile: gr.OAuthProfile | None = None) -> tuple:
        """Approve, reject, edit (with `corrected`) or restore `version` of one submission; returns it with its
        every version, and its text for the edit box."""
        who = _who(reviewer, profile)
        if not who:
            raise gr.Error("type your name as reviewer first", print_exception=False)
        out = service.review_task((correction_id or "").strip(), action, who,
                                  corrected=corrected if action == "edit" else None,
                                  version=int(version) if action == "restore" and version is not None else None)
        return out, out["corrected"]

    def pick(data: Any, evt: gr.SelectData):
        try:
            row = data.iloc[evt.index[0]]          # the table arrives as a pandas DataFrame
            return str(row["correction_id"]), str(row["corrected"])
        except Exception:  # noqa: BLE001 - a click outside the rows
            return gr.update(), gr.update()

    @handler
    def campaign_status(name: str) -> dict[str, Any]:
        """Progress, agreement (word similarity, chrF) and per-annotator figures of campaign `name`."""
        return service.campaign_status(name)

    @handler
    def start_finetune(name: str, steps: float, approved_only: bool, profile: gr.OAuthProfile | None = None):
        """Fine-tune the campaign's model on its corrections in the background (admins); returns the run."""
        job = service.start_finetune((name or "").strip(), user=profile.username if profile else None,
                                     steps=int(steps or 200), approved_only=bool(approved_only))
        return job, gr.Timer(active=True)

    @handler
    def finetune_status(job_id: str | None = None):
        """The latest fine-tuning run (or `job_id`): stage, step of steps, the new model folder, the report."""
        job = service.finetune_status(job_id or None)
        return job, gr.Timer(active=job.get("state") == "running")

    tune_start.click(start_finetune, [campaign, tune_steps, tune_approved], [tune_status, tune_timer],
                     api_name="start_finetune")
    gr.on([tune_refresh.click, tune_timer.tick], lambda: finetune_status(None), None, [tune_status, tune_timer],
          api_name="finetune_status", show_progress="hidden")
    gr.on([load.click, tab.select], review_queue, [campaign], [table], api_name="review_queue",
          concurrency_id="store")
    tab.select(lambda: gr.update(choices=_campaign_names(service)), None, [campaign], api_visibility="private",
               api_name="review_campaigns", show_progress="hidden")
    table.select(pick, [table], [correction, text], api_visibility="private", api_name="review_pick")
    apply.click(review_task, [correction, action, reviewer, text, version], [submission, text],
                api_name="review_task", concurrency_id="store")
    status_button.click(campaign_status, [campaign], [status], api_name="campaign_status",
                        concurrency_id="store").success(agreement_plot, [status], [plot], api_visibility="private",
                                                        api_name="review_plot", show_progress="hidden")


def _require(name: str, who: str) -> str:
    if not (name or "").strip():
        raise gr.Error("pick a campaign first", print_exception=False)
    if not who:
        raise gr.Error("type your name as annotator first", print_exception=False)
    return who


def _task_id(task: Any) -> int:
    try:
        return int(str(task).strip())
    except ValueError:
        raise gr.Error("no task is open: press Start", print_exception=False) from None


def _picture(service: Any, image_hash: str) -> Any:
    from PIL import Image

    with Image.open(io.BytesIO(service.image_bytes(image_hash))) as im:
        return im.convert("RGB")


def _diff(service: Any, model_output: str, corrected: str) -> list[tuple[str, str | None]]:
    return [(op.text + " ", _DIFF_CLASS[op.op]) for op in service.diff(model_output, corrected)]


def _progress_html(counts: dict[str, int]) -> str:
    total, done = counts["tasks"], counts["tasks_done"]
    return (f'<div id="annotate-progress-bar"><progress value="{done}" max="{max(total, 1)}" style="width:100%">'
            f'</progress><br>{done:,} of {total:,} tasks done · {counts["images_done"]:,} of {counts["images"]:,} '
            f'images · {counts["leased"]:,} open now · {counts["pending"]:,} waiting</div>')


def agreement_plot(status: dict[str, Any] | None) -> Any:
    """Bars per annotator: agreement with the others (word similarity) and mean edit rate (a matplotlib Figure)."""
    from matplotlib.figure import Figure

    people = (status or {}).get("annotators") or []
    fig = Figure(figsize=(6, 2.6), dpi=100)
    ax = fig.add_subplot()
    if not people:
        ax.text(0.5, 0.5, "no submissions yet", ha="center", va="center")
        ax.set_axis_off()
        return fig
    names = [p["annotator"] for p in people]
    x = list(range(len(names)))
    ax.bar([i - 0.2 for i in x], [p["agreement"] or 0 for p in people], width=0.4, label="agreement")
    ax.bar([i + 0.2 for i in x], [p["mean_edit_rate"] or 0 for p in people], width=0.4, label="mean edit rate")
    ax.set_xticks(x, names, rotation=30, ha="right")
    ws = ((status or {}).get("agreement") or {}).get("word_similarity")
    if ws is not None:
        ax.axhline(ws, color="gray", linestyle="--", linewidth=1, label=f"campaign word similarity {ws:.2f}")
    ax.legend(fontsize=7, loc="upper right")
    ax.set_ylim(0, max(1.05, max(p["mean_edit_rate"] or 0 for p in people) * 1.1))
    fig.tight_layout()
    return fig
