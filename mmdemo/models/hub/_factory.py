"""Build a hub model: a registered name, a hub id or a local folder -> the adapter for its family."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ...errors import WeightsMissingError
from ._base import HubModel
from ._catalogue import family_of, read_config
from ._weights import (cached_snapshot, download_allowed, hub_cache_dir, hub_kwargs, local_files, missing_message,
                       revision_of, source_of)


def load_model(name: str, *, device: str | None = None) -> HubModel:
    """The registry's factory. Looks only on this machine unless MMDEMO_ALLOW_DOWNLOAD=1 (and no HF_HUB_OFFLINE)."""
    source = source_of(name)
    folder = local_files(source)
    fetch = source.is_hub and folder is None and download_allowed()
    if folder is None and not fetch:
        raise WeightsMissingError(missing_message(name))
    if fetch:                           # the user opted in: config.json first, to pick the family
        from huggingface_hub import hf_hub_download

        try:
            config_path = hf_hub_download(source.location, "config.json", cache_dir=hub_cache_dir())
        except Exception as e:          # no network, unknown repo, gated repo: all one clear line
            raise WeightsMissingError(f"could not download {source.location}: {str(e).splitlines()[0]}") from None
        family = family_of(read_config(Path(config_path)), where=source.location)
    else:
        family = family_of(read_config(folder / "config.json"), where=source.location)
    hub = hub_kwargs(source.location, fetch) if source.is_hub else {}
    adapter: type[HubModel] = family.adapter_class()
    model = adapter.from_pretrained(source.location, name=name, device=device, weights=source.location,
                                    revision=revision_of(source, folder), **hub)
    if fetch:                           # now cached: record the commit it came from
        model.info = replace(model.info, revision=revision_of(source, cached_snapshot(source.location)))
    return model
