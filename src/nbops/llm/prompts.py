"""Prompts as versioned artifacts in MLflow's prompt registry.

``%%prompt NAME`` (:func:`register`) stores the cell body -- a ``{{variable}}`` template, or chat messages as a
YAML list of ``{role, content}`` -- as a new version of prompt NAME, only when it differs from the latest
version (the same text says "unchanged, version N"). ``nbops.prompt("NAME")`` (:func:`load`) loads the latest
version, ``"NAME@alias"`` the version an alias holds, ``"NAME/3"`` version 3; ``.format(**variables)`` fills it.

A prompt loaded inside a tracked cell is linked to the cell's run: tag ``nbops.prompts`` (``"qa/1,other/2"``,
what promotion gates search for) and MLflow's own link, the ``mlflow.linkedPrompts`` run tag that
``MlflowClient.link_prompt_version_to_run`` writes -- set as a run tag through the run's Tracker, so it goes
through the spool and the redactor like the run's other records. Registry writes go through
``get_writer().call`` (SQLite lock, retries, the redactor masks secrets in the template and message).
"""
from __future__ import annotations

import difflib
import json
import logging
import re
import weakref
from dataclasses import dataclass, field
from html import escape

from .errors import PromptError

log = logging.getLogger("nbops")
RUN_TAG = "nbops.prompts"               # "qa/1,other/2": the prompt versions a run used
MLFLOW_LINK_TAG = "mlflow.linkedPrompts"  # MLflow's own run <-> prompt version link (JSON list)
_NAME = re.compile(r"^[A-Za-z0-9][\w.\-]*$")
_VAR = re.compile(r"\{\{\s*([A-Za-z_][\w]*)\s*\}\}")
_LINKED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # Tracker -> [(name, version)]


def check_name(name: str) -> str:
    name = (name or "").strip()
    if not _NAME.match(name) or len(name) > 256:
        raise PromptError(f"{name!r} is not a prompt name: use letters, digits, '-', '_' and '.' (no spaces, '/' "
                          f"or '@', which address versions and aliases).", prompt=name)
    return name


def parse_body(body: str):
    """A cell body as a template: chat messages when it is a YAML list of ``{role, content}`` mappings, else the
    text itself (surrounding blank lines dropped)."""
    text = (body or "").strip("\n")
    if not text.strip():
        raise PromptError("The prompt is empty: write the template in the cell body, e.g. "
                          "'Answer briefly: {{question}}'.")
    if text.lstrip().startswith("- "):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise PromptError(f"The cell looks like a YAML list of chat messages but is not valid YAML "
                              f"({str(exc).splitlines()[0]}): write '- role: user' / '  content: ...' items.") \
                from None
        if not isinstance(data, list) or not all(isinstance(m, dict) for m in data):
            raise PromptError("Chat messages must be a YAML list of mappings with 'role' and 'content'.")
        for i, m in enumerate(data, 1):
            if set(m) != {"role", "content"} or not isinstance(m["content"], str):
                raise PromptError(f"Chat message {i} must have exactly 'role' and 'content' (text); it has "
                                  f"{', '.join(map(str, m)) or 'nothing'}.")
        return [{"role": str(m["role"]), "content": m["content"]} for m in data]
    return text


def _masked(template):
    from ..tracking import redact

    if isinstance(template, list):
        return [{**m, "content": redact.text(m["content"])} for m in template]
    return redact.text(template)


def variables_of(template) -> list[str]:
    texts = [m["content"] for m in template] if isinstance(template, list) else [template]
    out: list[str] = []
    for t in texts:
        for v in _VAR.findall(t):
            if v not in out:
                out.append(v)
    return out


@dataclass
class Prompt:
    """One version of a registered prompt: ``template`` (text, or a list of chat messages), ``format(**vars)``."""
    name: str
    version: int
    template: object
    message: str | None = None
    aliases: list = field(default_factory=list)
    tags: dict = field(default_factory=dict)

    @property
    def uri(self) -> str:
        return f"prompts:/{self.name}/{self.version}"

    @property
    def is_chat(self) -> bool:
        return isinstance(self.template, list)

    @property
    def variables(self) -> list[str]:
        return variables_of(self.template)

    def format(self, **values):
        """The template with every ``{{variable}}`` filled (chat prompts: a new list of messages). A variable
        the template needs and ``values`` lacks is one error naming it; extra values are ignored."""
        missing = [v for v in self.variables if v not in values]
        if missing:
            raise PromptError(f"Prompt {self.name} v{self.version} needs {', '.join(missing)}: pass "
                              f"{', '.join(f'{m}=...' for m in missing)} to .format().", prompt=self.name,
                              variables=missing, variable=missing[0])

        def fill(t: str) -> str:
            return _VAR.sub(lambda m: str(values[m.group(1)]), t)

        if self.is_chat:
            return [{**m, "content": fill(m["content"])} for m in self.template]
        return fill(self.template)

    def text(self) -> str:
        """The template as text (chat messages as the YAML a ``%%prompt`` cell holds)."""
        if not self.is_chat:
            return self.template
        import yaml

        return yaml.safe_dump(self.template, sort_keys=False, allow_unicode=True, width=1000).rstrip("\n")

    def headline(self) -> str:
        al = f" ({', '.join('@' + a for a in self.aliases)})" if self.aliases else ""
        kind = "chat prompt" if self.is_chat else "prompt"
        vs = ", ".join(self.variables) or "none"
        return f"{kind} {self.name} v{self.version}{al}; variables: {vs}"

    def __repr__(self) -> str:
        msg = f"\n  message: {self.message}" if self.message else ""
        return f"{self.headline()}{msg}\n" + "\n".join("  | " + x for x in self.text().splitlines())

    def _repr_html_(self) -> str:
        msg = f"<br><i>{escape(self.message)}</i>" if self.message else ""
        return (f"<div class='nbops-prompt'><b>{escape(self.headline())}</b>{msg}"
                f"<pre style='white-space:pre-wrap'>{escape(self.text())}</pre></div>")


@dataclass
class Registration:
    """What ``%%prompt`` did: ``status`` is ``registered`` (a new version) or ``unchanged``."""
    prompt: Prompt
    status: str
    alias: str | None = None

    def headline(self) -> str:
        p = self.prompt
        al = f"; @{self.alias} -> v{p.version}" if self.alias else ""
        if self.status == "unchanged":
            return f"Prompt {p.name} unchanged, version {p.version}{al}."
        return f"Registered prompt {p.name} version {p.version}{al}."

    def __repr__(self) -> str:
        return f"{self.headline()}\n  {self.prompt.headline()}"

    def _repr_html_(self) -> str:
        return (f"<div class='nbops-prompt-registration'><b>{escape(self.headline())}</b><br>"
                f"{escape(self.prompt.headline())}</div>")


@dataclass
class PromptDiff:
    """A unified diff between two versions of a prompt."""
    name: str
    a: Prompt
    b: Prompt

    def lines(self) -> list[str]:
        return list(difflib.unified_diff(self.a.text().splitlines(), self.b.text().splitlines(),
                                         f"{self.name} v{self.a.version}", f"{self.name} v{self.b.version}",
                                         lineterm=""))

    def __repr__(self) -> str:
        lines = self.lines()
        return "\n".join(lines) if lines else f"{self.name}: v{self.a.version} and v{self.b.version} are identical."

    def _repr_html_(self) -> str:
        colors = {"+": "#1a7f37", "-": "#cf222e", "@": "#57606a"}
        rows = [f"<span style='color:{colors.get(x[:1], 'inherit')}'>{escape(x)}</span>" for x in self.lines()]
        body = "\n".join(rows) or escape(repr(self))
        return f"<div class='nbops-prompt-diff'><pre>{body}</pre></div>"


# -- registry reads ---------------------------------------------------------------------------------------
def _client():
    from ..tracking.writer import get_writer

    return get_writer().client


def _from_mlflow(pv) -> Prompt:
    tags = {k: v for k, v in (pv.tags or {}).items()}
    return Prompt(pv.name, int(pv.version), pv.template, pv.commit_message or None, list(pv.aliases or []), tags)


def _missing(exc) -> bool:
    from ..tracking.mlflow_errors import not_found

    return not_found(exc) or getattr(exc, "error_code", "") == "INVALID_PARAMETER_VALUE"


def versions(name: str, client=None) -> list[int]:
    """The version numbers of prompt ``name``, oldest first ([] when there is no such prompt)."""
    from mlflow.exceptions import MlflowException

    c = client or _client()
    out, token = [], None
    try:
        while True:
            page = c.search_prompt_versions(name, max_results=1000, page_token=token)
            out += [int(p.version) for p in page]
            token = getattr(page, "token", None)
            if not token:
                break
    except MlflowException as exc:
        if _missing(exc):
            return []
        raise
    return sorted(out)


def get(name: str, version=None, alias: str | None = None, client=None) -> Prompt:
    """One version: ``version`` (a number), ``alias``, else the latest. One-line errors when it does not exist."""
    from mlflow.exceptions import MlflowException

    c = client or _client()
    name = check_name(name)
    try:
        if alias:
            pv = c.get_prompt_version_by_alias(name, alias)
        else:
            if version is None:
                vs = versions(name, c)
                if not vs:
                    raise PromptError(f"No prompt {name!r} in {c.tracking_uri}: register it with a %%prompt {name} "
                                      f"cell.", prompt=name)
                version = vs[-1]
            pv = c.get_prompt_version(name, int(version))
    except MlflowException as exc:
        if not _missing(exc):
            raise
        pv = None
    if pv is None:
        vs = versions(name, c)
        if not vs:
            raise PromptError(f"No prompt {name!r} in {c.tracking_uri}: register it with a %%prompt {name} cell.",
                              prompt=name)
        if alias:
            raise PromptError(f"Prompt {name!r} has no alias {alias!r}: set it with %%prompt {name} --alias {alias} "
                              f"or %promote prompt {name} --alias {alias}.", prompt=name, alias=alias)
        raise PromptError(f"Prompt {name!r} has no version {version} (versions: {', '.join(map(str, vs))}).",
                          prompt=name, version=str(version))
    p = _from_mlflow(pv)
    if alias and alias not in p.aliases:
        p.aliases.append(alias)
    return p


def parse_ref(ref: str) -> tuple[str, int | None, str | None]:
    """``"NAME"``, ``"NAME@alias"``, ``"NAME/3"`` (a ``prompts:/`` prefix is accepted) -> (name, version, alias)."""
    ref = (ref or "").strip()
    if ref.startswith("prompts:/"):
        ref = ref[len("prompts:/"):]
    if "@" in ref:
        name, alias = ref.split("@", 1)
        if not alias:
            raise PromptError(f"{ref!r}: give the alias after '@', e.g. {name}@production.", prompt=name)
        return check_name(name), None, alias
    if "/" in ref:
        name, v = ref.rsplit("/", 1)
        if not v.isdigit():
            raise PromptError(f"{ref!r}: give a version number after '/', e.g. {name}/3.", prompt=name)
        return check_name(name), int(v), None
    return check_name(ref), None, None


def load(ref: str) -> Prompt:
    """``nbops.prompt("qa")`` (latest), ``"qa@production"``, ``"qa/3"``. The version loaded is noted for the
    current tracked cell's LLM calls (:mod:`nbops.llm.used`) and linked to its run."""
    name, version, alias = parse_ref(ref)
    p = get(name, version, alias)
    link(p.name, p.version)
    return p


def link(name: str, version: int, tracker=None) -> None:
    """Note ``name`` v``version`` as used by the current tracked cell and tag its run (``nbops.prompts`` and MLflow's
    ``mlflow.linkedPrompts``)."""
    from ..tracking.run import current
    from . import used

    used.note(name, version)
    t = tracker or current()
    if t is None:
        return
    seen = _LINKED.setdefault(t, [])
    if (name, int(version)) in seen:
        return
    seen.append((name, int(version)))
    t.set_tag(RUN_TAG, ",".join(f"{n}/{v}" for n, v in seen))
    t.set_tag(MLFLOW_LINK_TAG, json.dumps([{"name": n, "version": str(v)} for n, v in seen]))


def used_by(run_tags: dict) -> list[tuple[str, int]]:
    """The prompt versions a run's tags say it used."""
    out = []
    for item in (run_tags.get(RUN_TAG) or "").split(","):
        n, _, v = item.strip().rpartition("/")
        if n and v.isdigit():
            out.append((n, int(v)))
    return out


# -- registry writes --------------------------------------------------------------------------------------
def register(name: str, body: str, message: str | None = None, alias: str | None = None) -> Registration:
    """Register ``body`` as a new version of prompt ``name`` when it differs from the latest version (secrets in it
    are masked first); move ``alias`` to the version when given."""
    from ..registry.core import check_alias
    from ..tracking.writer import get_writer

    name = check_name(name)
    if alias:
        alias = check_alias(alias)
    template = _masked(parse_body(body))
    w = get_writer()
    if w.settings.offline:
        raise PromptError("NBOPS_OFFLINE=1 is set: registering a prompt needs the registry. Unset it and run the "
                          "cell again.", prompt=name)
    c = w.client
    vs = versions(name, c)
    if not vs and _is_model(c, name):
        raise PromptError(f"{name!r} is a registered model, not a prompt: pick another prompt name.", prompt=name)
    latest = get(name, vs[-1], client=c) if vs else None
    if latest is not None and latest.template == template:
        prompt, status = latest, "unchanged"
    else:
        if not vs:
            _create(w, c, name, message)
        pv = w.call(c.create_prompt_version, name, template, description=message or None)
        prompt, status = _from_mlflow(pv), "registered"
        log.debug("nbops: registered prompt %s v%s", name, prompt.version)
    if alias:
        w.call(c.set_prompt_alias, name, alias, int(prompt.version))
        if alias not in prompt.aliases:
            prompt.aliases.append(alias)
    _link_experiment(w, c, name)
    return Registration(prompt, status, alias)


EXPERIMENTS_TAG = "_mlflow_experiment_ids"  # MLflow's own: the experiments whose Prompts tab lists the prompt


def _link_experiment(w, c, name: str) -> None:
    """List the prompt in the kernel's experiment (MLflow UI's Prompts tab, ``search_prompts('experiment_id =
    ...')``), as ``mlflow.genai.register_prompt`` does -- here through the writer. Only an experiment that exists."""
    exp = c.get_experiment_by_name(w.settings.experiment)
    if exp is None:
        return
    p = c.get_prompt(name)
    ids = [i for i in ((p.tags if p else {}) or {}).get(EXPERIMENTS_TAG, "").split(",") if i.strip()]
    if exp.experiment_id not in ids:
        w.call(c.set_prompt_tag, name, EXPERIMENTS_TAG, f",{','.join(ids + [exp.experiment_id])},")


def _is_model(c, name: str) -> bool:
    try:
        c.get_registered_model(name)
        return True
    except Exception:  # noqa: BLE001 - not found (or a prompt, which MLflow hides from this call)
        return False


def _create(w, c, name: str, message: str | None) -> None:
    from mlflow.exceptions import MlflowException

    from ..tracking.mlflow_errors import already_exists

    try:
        w.call(c.create_prompt, name, description=message or None)
    except MlflowException as exc:
        if not already_exists(exc):  # another kernel made it meanwhile: add the version to it
            raise


def diff(name: str, a: int, b: int) -> PromptDiff:
    """``%prompt NAME --diff A B``: what changed from version ``a`` to version ``b``."""
    c = _client()
    return PromptDiff(check_name(name), get(name, a, client=c), get(name, b, client=c))
