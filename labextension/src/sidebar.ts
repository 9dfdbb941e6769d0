/**
 * The "nbops" left sidebar: the focused notebook's runs, newest first, filterable; a run expands to its details and
 * its MLflow UI link, and takes the notebook to the cell that produced it; two or more ticked runs can be compared.
 * Everything is built with DOM calls and textContent (no HTML from the store is ever parsed).
 */
import { Widget } from '@lumino/widgets';

import { IRun, runLink } from './api';
import { button, el, fmt, header, nbopsIcon } from './dom';
import { isLive, RunsModel } from './model';

export const SIDEBAR_ID = 'nbops-sidebar';

export interface ISidebarOptions {
  model: RunsModel;
  /** Take the notebook to the cell that produced a run; false when no cell of this notebook did. */
  goToCell: (run: IRun) => boolean;
  compare: (runs: IRun[]) => void;
  /** Open the promote dialog with this run as the candidate. */
  promote: (run: IRun) => void;
  /** Open the registered models panel. */
  models: () => void;
}

export function duration(run: IRun): string {
  // a RUNNING run's duration grows: counted here (the API's token does not change for it)
  let s = typeof run.duration_s === 'number' && !isLive(run.status) ? run.duration_s : NaN;
  if (isNaN(s) && run.start_time) {
    const start = Date.parse(run.start_time);
    const end = run.end_time ? Date.parse(run.end_time) : isLive(run.status) ? Date.now() : NaN;
    s = (end - start) / 1000;
  }
  if (isNaN(s) || s < 0) {
    return '';
  }
  if (s < 60) {
    return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  }
  const m = Math.floor(s / 60);
  return m < 60 ? `${m} min ${Math.round(s % 60)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** FINISHED / FAILED / RUNNING / spooled ... as the chip shows it. */
export function statusLabel(run: IRun): string {
  if (run.spooled && !isLive(run.status)) {
    return 'spooled';
  }
  return run.status || '?';
}

export function statusChip(run: IRun): HTMLElement {
  const label = statusLabel(run);
  const chip = el('span', `nbops-chip nbops-status-${label.toLowerCase()}`, label);
  if (run.pending) {
    chip.classList.add('nbops-pending');
    chip.title = 'this cell ran here; its run is being written to the store';
  }
  return chip;
}

/** The few numbers that say how a run went: its metrics first, then its params. */
export function headline(run: IRun, max = 4): string[] {
  const m = Object.entries(run.metrics ?? {}).map(([k, v]) => `${k}=${fmt(v)}`);
  const p = Object.entries(run.params ?? {}).map(([k, v]) => `${k}=${fmt(v)}`);
  return [...m.slice(0, max), ...p.slice(0, Math.max(0, max - Math.min(m.length, max)))];
}

function matches(run: IRun, needle: string): boolean {
  if (!needle) {
    return true;
  }
  const hay = [
    run.run_name,
    run.run_id,
    statusLabel(run),
    ...Object.entries(run.params ?? {}).map(([k, v]) => `${k}=${fmt(v)}`),
    ...Object.entries(run.metrics ?? {}).map(([k, v]) => `${k}=${fmt(v)}`),
    ...(run.data ?? []).map(d => `${d.name ?? ''} ${d.digest ?? ''}`),
    ...verdictLines(run).map(([k, v]) => `${k} ${v}`)
  ]
    .join(' ')
    .toLowerCase();
  return needle
    .toLowerCase()
    .split(/\s+/)
    .every(w => hay.includes(w));
}

const SHOWN_ELSEWHERE = new Set([
  'run_id', 'run_name', 'experiment_id', 'status', 'start_time', 'end_time', 'duration_s', 'cell_id', 'params',
  'metrics', 'params_total', 'metrics_total', 'url', 'data', 'verdicts', 'incidents', 'pending', 'notebook',
  'source',
  'spooled'
]);

/** The drift / validation / evaluation verdicts of a run as (label, text) pairs. */
export function verdictLines(run: IRun): [string, string][] {
  const v = run.verdicts;
  const out: [string, string][] = [];
  if (!v) {
    return out;
  }
  if (v.drift) {
    const d = v.drift;
    const cols = d.drifted && d.drifted.length ? `: ${d.drifted.join(', ')}` : '';
    out.push(['drift', `${d.is_drift ? 'DRIFT' : 'no drift'}${cols}${d.reference ? ` (vs ${d.reference})` : ''}`]);
  }
  for (const c of v.validation ?? []) {
    out.push([`validation ${c.data ?? ''}`.trim(), c.status ?? (c.passed ? 'passed' : 'FAILED')]);
  }
  if (v.evaluation) {
    const e = v.evaluation;
    out.push(['evaluation', [e.task, e.data, e.target ? `target ${e.target}` : ''].filter(Boolean).join(', ')]);
  }
  return out;
}

export class NbopsSidebar extends Widget {
  private _model: RunsModel;
  private _opts: ISidebarOptions;
  private _expanded = new Set<string>();
  private _selected = new Set<string>();
  private _title = el('div', 'nbops-Sidebar-notebook');
  private _filter = el('input', 'nbops-Sidebar-filter jp-mod-styled');
  private _compare = button('nbops-Sidebar-compare jp-mod-accept', 'Compare', 'Tick two or more runs to compare them',
    () => {
      const runs = this._model.runs.filter(r => this._selected.has(r.run_id));
      if (runs.length >= 2) {
        this._opts.compare(runs);
      }
    });
  private _message = el('div', 'nbops-Sidebar-message');
  private _list = el('ul', 'nbops-Sidebar-runs');
  /** the run the list's one Tab stop is on (roving tabindex): the last one focused, else the first shown */
  private _current: string | undefined;

  constructor(opts: ISidebarOptions) {
    super();
    this._opts = opts;
    this._model = opts.model;
    this.id = SIDEBAR_ID;
    this.addClass('nbops-Sidebar');
    this.title.icon = nbopsIcon;
    this.title.caption = 'nbops: runs of this notebook';
    this.node.setAttribute('role', 'region');
    this.node.setAttribute('aria-label', 'nbops: runs of this notebook');

    const refresh = button('nbops-Sidebar-refresh', '⟳', 'Refresh the runs', () => void this._model.refresh());
    const models = button('nbops-Sidebar-models', 'Models', 'Registered models: aliases, promote, roll back',
      () => this._opts.models());
    this._compare.disabled = true;
    this._filter.type = 'search';
    this._filter.placeholder = 'Filter: name, status, param=value…';
    this._filter.setAttribute('aria-label', 'Filter runs');
    this._filter.addEventListener('input', () => this._render());
    // a listbox of runs: one Tab stop, arrows move, Enter / → open a run (and its cell), ← closes it, Space
    // ticks it for compare
    this._list.setAttribute('role', 'listbox');
    this._list.setAttribute('aria-multiselectable', 'true');
    this._list.setAttribute('aria-label', 'Runs of this notebook, newest first (Space: select for compare)');
    this._list.addEventListener('keydown', e => this._onKey(e));
    this._list.addEventListener('focusin', e => {
      const li = (e.target as HTMLElement).closest('.nbops-run') as HTMLElement | null;
      if (li && li.dataset.runId !== this._current) {
        this._current = li.dataset.runId;
        this._rove();
      }
    });
    this._message.setAttribute('role', 'status');
    this.node.append(header('nbops', [refresh, models, this._compare], true), this._title, this._filter,
      this._message, this._list);

    this._model.changed.connect(this._render, this);
    this._render();
  }

  protected onAfterShow(): void {
    this._model.visible = true;
  }

  protected onAfterHide(): void {
    this._model.visible = false;
  }

  dispose(): void {
    this._model.changed.disconnect(this._render, this);
    super.dispose();
  }

  private _render(): void {
    const panel = this._model.panel;
    this._title.textContent = panel ? panel.context.path : '';
    this._title.title = panel ? panel.context.path : '';
    const runs = this._model.runs;
    const known = new Set(runs.map(r => r.run_id));
    for (const id of [...this._selected]) {
      if (!known.has(id)) {
        this._selected.delete(id);
      }
    }
    this._selectionChanged();

    const error = this._model.error;
    const shown = runs.filter(r => matches(r, this._filter.value.trim()));
    let message = '';
    if (!panel) {
      message = 'Open a notebook to see its runs.';
    } else if (error) {
      message = error;
    } else if (!this._model.loaded && !runs.length) {
      message = 'Loading runs…';
    } else if (!runs.length) {
      message = 'No tracked runs from this notebook yet: run a %%track cell.';
    } else if (!shown.length) {
      message = `No run matches “${this._filter.value.trim()}”.`;
    }
    this._message.textContent = message;
    this._message.classList.toggle('nbops-mod-error', !!error);

    const focused = (document.activeElement as HTMLElement | null)?.closest?.('.nbops-run') as HTMLElement | null;
    const focusId = focused && this._list.contains(focused) ? focused.dataset.runId : undefined;
    this._list.replaceChildren(...shown.map(r => this._item(r)));
    this._rove();
    if (focusId) {
      (this._list.querySelector(`[data-run-id="${CSS.escape(focusId)}"]`) as HTMLElement | null)?.focus();
    }
  }

  private _item(run: IRun): HTMLElement {
    const li = el('li', 'nbops-run');
    li.tabIndex = -1;
    li.dataset.runId = run.run_id;
    li.dataset.status = statusLabel(run);
    li.setAttribute('role', 'option');
    li.setAttribute('aria-selected', String(this._selected.has(run.run_id)));
    li.setAttribute('aria-label', `${run.run_name ?? run.run_id}: ${statusLabel(run)} ${duration(run)}`.trim());
    const expanded = this._expanded.has(run.run_id);
    li.setAttribute('aria-expanded', String(expanded));

    const head = el('div', 'nbops-run-head');
    const tick = el('input', 'nbops-run-select');
    tick.type = 'checkbox';
    tick.checked = this._selected.has(run.run_id);
    tick.disabled = !!run.pending;
    tick.tabIndex = -1; // the keyboard ticks a run with Space on the run itself
    tick.setAttribute('aria-label', `select ${run.run_name ?? run.run_id} for compare`);
    tick.addEventListener('click', e => e.stopPropagation());
    tick.addEventListener('change', () => this._select(run, tick.checked));
    head.append(tick, el('span', 'nbops-run-name', run.run_name ?? run.run_id), statusChip(run));
    head.append(el('span', 'nbops-run-duration', duration(run)));
    li.append(head);
    const kv = headline(run);
    if (kv.length) {
      li.append(el('div', 'nbops-run-kv', kv.join(' · ')));
    }
    if (expanded) {
      li.append(this._details(run));
    }
    li.addEventListener('click', e => {
      if ((e.target as HTMLElement).closest('a, button, .nbops-run-details')) {
        return;
      }
      this._activate(run);
    });
    return li;
  }

  private _activate(run: IRun): void {
    if (this._expanded.has(run.run_id)) {
      this._expanded.delete(run.run_id);
    } else {
      this._expanded.add(run.run_id);
    }
    const found = this._opts.goToCell(run);
    this._render();
    if (!found) {
      this._message.textContent = `No cell of this notebook has run ${run.run_name ?? run.run_id} (edited or removed).`;
    }
  }

  private _details(run: IRun): HTMLElement {
    const box = el('div', 'nbops-run-details');
    const table = el('table', 'nbops-kv');
    const row = (k: string, v: string, cls?: string) => {
      const tr = el('tr', cls);
      tr.append(el('th', undefined, k), el('td', undefined, v));
      table.append(tr);
    };
    if (!run.pending) {
      row('run id', run.run_id);
    }
    if (run.source === 'notebook') {
      row('from', 'this notebook\'s saved output (the store has not answered)');
    }
    if (run.start_time) {
      row('started', new Date(run.start_time).toLocaleString());
    }
    for (const [k, v] of Object.entries(run.params ?? {})) {
      row(k, fmt(v), 'nbops-param');
    }
    for (const [k, v] of Object.entries(run.metrics ?? {})) {
      row(k, fmt(v), 'nbops-metric');
    }
    if (run.params_total !== undefined && run.params_total > Object.keys(run.params ?? {}).length) {
      row('', `${run.params_total} params in all (see MLflow)`);
    }
    for (const d of run.data ?? []) {
      const shape = [d.rows != null ? `${d.rows} rows` : '', d.columns != null ? `${d.columns} cols` : '']
        .filter(Boolean)
        .join(', ');
      const what = [d.short ?? String(d.digest ?? '').slice(0, 12), shape, d.context ?? ''].filter(Boolean);
      row(`data ${d.name ?? ''}`.trim(), what.join(' · '), 'nbops-data');
    }
    for (const [k, v] of verdictLines(run)) {
      row(k, v, 'nbops-verdict');
    }
    if (run.incidents !== undefined && run.incidents !== null && run.incidents !== '') {
      row('incidents', fmt(run.incidents), 'nbops-incidents');
    }
    for (const [k, v] of Object.entries(run)) {
      if (!SHOWN_ELSEWHERE.has(k) && v !== null && v !== undefined && typeof v !== 'object') {
        row(k.replace(/_/g, ' '), fmt(v));
      }
    }
    box.append(table);
    if (!run.pending) {
      const a = el('a', 'nbops-run-link', 'Open in MLflow ↗');
      a.href = runLink(run);
      a.target = '_blank';
      a.rel = 'noopener';
      const promote = el('button', 'nbops-run-promote jp-mod-styled', 'Promote…');
      promote.title = 'Register this run\'s model and move an alias to it, behind gates';
      promote.addEventListener('click', () => this._opts.promote(run));
      box.append(a, promote);
    }
    return box;
  }

  private _select(run: IRun, on: boolean): void {
    if (on && !run.pending) {
      this._selected.add(run.run_id);
    } else {
      this._selected.delete(run.run_id);
    }
    const li = this._list.querySelector(`[data-run-id="${CSS.escape(run.run_id)}"]`);
    li?.setAttribute('aria-selected', String(this._selected.has(run.run_id)));
    const tick = li?.querySelector('input.nbops-run-select') as HTMLInputElement | null;
    if (tick) {
      tick.checked = this._selected.has(run.run_id);
    }
    this._selectionChanged();
  }

  private _selectionChanged(): void {
    const n = this._selected.size;
    this._compare.disabled = n < 2;
    this._compare.textContent = n ? `Compare (${n})` : 'Compare';
  }

  /** One Tab stop in the list: the current run's row (the first one when the current run is not shown), then
   * the links and buttons of its details; those of the other open runs are reached through their row. */
  private _rove(): void {
    const items = [...this._list.querySelectorAll(':scope > .nbops-run')] as HTMLElement[];
    const current = items.find(li => li.dataset.runId === this._current) ?? items[0];
    for (const li of items) {
      li.tabIndex = li === current ? 0 : -1;
      for (const control of li.querySelectorAll('.nbops-run-details a, .nbops-run-details button')) {
        (control as HTMLElement).tabIndex = li === current ? 0 : -1;
      }
    }
  }

  private _onKey(e: KeyboardEvent): void {
    const li = (e.target as HTMLElement).closest('.nbops-run') as HTMLElement | null;
    if (!li || e.target !== li) {
      return;
    }
    const run = this._model.runs.find(r => r.run_id === li.dataset.runId);
    const items = [...this._list.querySelectorAll(':scope > .nbops-run')] as HTMLElement[];
    const to = (next: Element | null | undefined) => (next as HTMLElement | null)?.focus();
    const expanded = !!run && this._expanded.has(run.run_id);
    switch (e.key) {
      case 'Enter':
        if (run) {
          this._activate(run);
        }
        break;
      case 'ArrowRight':
        if (run && !expanded) {
          this._activate(run);
        }
        break;
      case 'ArrowLeft':
        if (run && expanded) {
          this._expanded.delete(run.run_id);
          this._render();
        }
        break;
      case ' ':
        if (run) {
          this._select(run, !this._selected.has(run.run_id));
        }
        break;
      case 'ArrowDown':
        to(li.nextElementSibling);
        break;
      case 'ArrowUp':
        to(li.previousElementSibling);
        break;
      case 'Home':
        to(items[0]);
        break;
      case 'End':
        to(items[items.length - 1]);
        break;
      default:
        return;
    }
    e.preventDefault();
  }
}
