"""Dataset tab: the saved corrections as a table, filters, statistics plots, and export downloads."""
from __future__ import annotations

from typing import Any

import gradio as gr

from ..access import Access
from .common import handler

COLUMNS = ["corrected", "model_output", "annotator", "model", "task", "question", "note", "edit_rate",
           "created_at", "version", "id"]
FORMATS = [("CSV", "csv"), ("JSON Lines", "jsonl"), ("COCO captions", "coco"), ("Parquet", "parquet")]
PAGE = 200


def build(service, tab: gr.Tab) -> None:
    """Build the tab's contents; opening `tab` refreshes the table."""
    rules = Access.from_settings()
    with gr.Row():
        model = gr.Textbox(label="Model", max_lines=1, placeholder="any", scale=1)
        task = gr.Dropdown([("any", ""), ("caption", "caption"), ("vqa", "vqa")], value="", label="Task", scale=1)
        annotator = gr.Textbox(label="Annotator", max_lines=1, placeholder="any", scale=1)
        search = gr.Textbox(label="Search text", max_lines=1, placeholder="words in the output, correction, "
                            "question or note", scale=2, elem_id="dataset-search")
    refresh = gr.Button("Refresh", elem_id="dataset-refresh")
    table = gr.Dataframe(headers=COLUMNS, label=f"Corrections (newest first, up to {PAGE})", interactive=False,
                         wrap=True, elem_id="dataset-table", max_height=420,
                         column_widths=["22%", "18%", "9%", "9%", "6%", "10%", "8%", "5%", "9%", "4%", "10%"])
    with gr.Row():
        plot = gr.Plot(label="Statistics", elem_id="dataset-plot")
        stats = gr.JSON(label="Counts")
    with gr.Row():
        fmt = gr.Radio(FORMATS, value="csv", label="Export format", scale=2)
        export_button = gr.Button("Export", variant="primary", scale=1, elem_id="dataset-export")
    download = gr.File(label="Download", interactive=False, elem_id="dataset-download")
    with gr.Accordion("Edit a row (click it in the table): save a new version, or restore an earlier one",
                      open=False):
        with gr.Row():
            row_id = gr.Textbox(label="Correction id", max_lines=1, elem_id="dataset-edit-id")
            editor = gr.Textbox(label="Your name", max_lines=1, elem_id="dataset-edit-annotator")
            restore_to = gr.Number(label="Version to restore", precision=0, value=1, minimum=1,
                                   elem_id="dataset-edit-version")
        row_text = gr.Textbox(label="Corrected text", lines=2, elem_id="dataset-edit-text")
        with gr.Row():
            save_row = gr.Button("Save as a new version", variant="primary", elem_id="dataset-edit-save")
            restore_row = gr.Button("Restore that version", elem_id="dataset-edit-restore")
        row_json = gr.JSON(label="The correction and every version", elem_id="dataset-edit-json")

    @handler
    def corrections(model: str, task: str, annotator: str, search: str, profile: gr.OAuthProfile | None):
        """The saved corrections matching the filters, newest first, as a table (at most 200 rows). Admins only
        when logins are on."""
        import pandas as pd

        rules.require_admin(_user(profile), "The corrections table and its annotator names")
        rows = service.corrections(model=(model or "").strip(), task=task or None,
                                   annotator=(annotator or "").strip(), search=(search or "").strip(), limit=PAGE)
        data = [{"created_at": c.created_at.strftime("%Y-%m-%d %H:%M:%S"), "model": c.model, "task": c.task,
                 "question": c.question or "", "model_output": c.model_output or "", "corrected": c.corrected,
                 "annotator": c.annotator or "", "note": c.note or "", "edit_rate": round(c.edit_rate, 3),
                 "version": c.version, "id": c.id} for c in rows]
        return pd.DataFrame(data, columns=COLUMNS)

    @handler
    def statistics(profile: gr.OAuthProfile | None) -> dict[str, Any]:
        """Counts of saved corrections by model, task and annotator (admins only when logins are on), and the mean
        edit rate."""
        return rules.stats(_user(profile), service.stats())

    @handler
    def export(fmt: str, profile: gr.OAuthProfile | None) -> str:
        """Every saved correction in one file: fmt is csv, jsonl, coco or parquet. Returns the file. Admins only
        when logins are on."""
        rules.require_admin(_user(profile), "Exports")
        return service.export(fmt)

    filters = [model, task, annotator, search]
    gr.on([tab.select, refresh.click, search.submit, model.submit, annotator.submit, task.change], corrections, filters,
          [table], api_name="corrections", concurrency_id="store").then(
        statistics, None, [stats], api_name="stats", concurrency_id="store").success(
        _figure, [stats], [plot], api_visibility="private", api_name="plot_stats", show_progress="hidden")
    export_button.click(export, [fmt], [download], api_name="export", concurrency_id="store")

    def pick(data: Any, evt: gr.SelectData):
        try:
            row = data.iloc[evt.index[0]]
            return str(row["id"]), str(row["corrected"])
        except Exception:  # noqa: BLE001 - a click outside the rows
            return gr.update(), gr.update()

    @handler
    def edit_correction(cid: str, corrected: str, annotator: str) -> tuple:
        """Save `corrected` as a new version of correction `cid`; returns it with every version, and its text."""
        out = service.edit_correction((cid or "").strip(), corrected, (annotator or "").strip() or None)
        return out, out["corrected"]

    @handler
    def restore_version(cid: str, version: float | None, annotator: str) -> tuple:
        """Make version `version` of correction `cid` the latest (a new version; nothing is lost)."""
        out = service.restore_version((cid or "").strip(), int(version or 0), (annotator or "").strip() or None)
        return out, out["corrected"]

    table.select(pick, [table], [row_id, row_text], api_visibility="private", api_name="dataset_pick")
    save_row.click(edit_correction, [row_id, row_text, editor], [row_json, row_text], api_name="edit_correction",
                   concurrency_id="store")
    restore_row.click(restore_version, [row_id, restore_to, editor], [row_json, row_text],
                      api_name="restore_version", concurrency_id="store")


def _user(profile: gr.OAuthProfile | None) -> str | None:
    return profile.username if profile is not None else None


def _figure(numbers: dict[str, Any] | None):
    """Bar charts of corrections per model, annotator and task (a matplotlib Figure; no pyplot, no display)."""
    from matplotlib.figure import Figure

    if not numbers:
        return None
    fig = Figure(figsize=(8, 3), layout="constrained")
    panels = (("by_model", "per model"), ("by_annotator", "per annotator"), ("by_task", "per task"))
    axes = fig.subplots(1, len(panels))
    for ax, (key, title) in zip(axes, panels):
        counts = numbers.get(key) or {}
        labels = [(k or "(none)")[:18].replace("$", r"\$") for k in counts]   # "$" would start mathtext
        ax.barh(labels, list(counts.values()), color="#5b8def")
        ax.set_title(title, fontsize=10)
        ax.invert_yaxis()
        ax.tick_params(labelsize=8)
    rate = numbers.get("mean_edit_rate")
    fig.suptitle(f"{numbers.get('corrections', 0)} corrections"
                 + ("" if rate is None else f" · mean edit rate {rate:.2f}"), fontsize=11)
    return fig
