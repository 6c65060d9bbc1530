"""Who may do what in the app, given the logged-in user name and the settings. No gradio here.

Logins count only when OAuth is on (`MMDEMO_OAUTH=1`, or `OAUTH_CLIENT_ID` on a Space with `hf_oauth: true`):
- saving a correction (annotating) needs a logged-in user, and records that user: a typed name is ignored;
- the corrections table, exports and annotator names are for admins (`MMDEMO_ADMINS`, comma-separated; by
  default the Space's owner, `SPACE_AUTHOR_NAME`). User names compare case-insensitively.
Without OAuth (local use, the default) everyone may do everything, and the annotator is the name typed.

    rules = Access.from_settings()
    who = rules.annotator(user, typed)          # AccessError when a login is needed
    rules.require_admin(user, "exports")        # AccessError unless allowed
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .config import Settings, settings
from .errors import MmdemoError


class AccessError(MmdemoError, PermissionError):
    """The user is not logged in, or is not allowed to do this."""


@dataclass(frozen=True)
class Access:
    oauth: bool = False                                        # do logins count?
    admins: frozenset[str] = field(default_factory=frozenset)  # case-folded user names

    @classmethod
    def from_settings(cls, cfg: Settings | None = None) -> "Access":
        cfg = cfg or settings()
        return cls(cfg.oauth, frozenset(a.casefold() for a in cfg.admins))

    def is_admin(self, user: str | None) -> bool:
        """Admins may export and see the corrections table and annotator names (everyone may, without OAuth)."""
        if not self.oauth:
            return True
        return bool(user) and user.casefold() in self.admins

    def annotator(self, user: str | None, typed: str | None = None) -> str | None:
        """The name recorded with a save: the logged-in user with OAuth (a typed name is ignored), else the typed
        one."""
        if not self.oauth:
            return (typed or "").strip() or None
        if not user:
            raise AccessError("log in with Hugging Face (the button at the top) to save corrections")
        return user

    def require_admin(self, user: str | None, what: str) -> None:
        """Raise AccessError unless `user` may see `what` (e.g. "exports")."""
        if self.is_admin(user):
            return
        if not user:
            raise AccessError(f"{what} are for admins: log in with Hugging Face (the button at the top)")
        raise AccessError(f"{what} are for admins, and {user} is not one; the Space's owner can add you to "
                          f"MMDEMO_ADMINS")

    def stats(self, user: str | None, numbers: dict[str, Any]) -> dict[str, Any]:
        """Store statistics as this user may see them: no annotator names unless an admin."""
        if self.is_admin(user):
            return numbers
        return {k: v for k, v in numbers.items() if k != "by_annotator"}
