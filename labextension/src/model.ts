/**
 * The runs of the notebook in focus: what the server's store says, plus the tracked cells this page is running
 * right now (shown as RUNNING before the store has them). One model serves the sidebar and the cell badges.
 *
 * Polling: never more than one request a second; once a second only while a kernel is busy, a run is RUNNING or
 * a cell that ran here is not in the store yet; every 10 s while the sidebar is visible; otherwise not at all
 * (a kernel going busy or idle, or the sidebar being shown, asks again). A hidden browser tab never polls.
 */
import { Cell, ICodeCellModel } from '@jupyterlab/cells';
import { NotebookActions, NotebookPanel, Notebook } from '@jupyterlab/notebook';
import { ISignal, Signal } from '@lumino/signaling';

import { ApiError, fetchRuns, IRun } from './api';

export const FAST_MS = 1000;
export const SLOW_MS = 10000;
/** How long after a tracked cell ended its run may take to reach the store (written in the background). */
const PENDING_MS = 180000;

/** A tracked cell this page ran, until the store has its run. */
export interface ILocalRun {
  cellId: string;
  name: string | null;
  status: 'RUNNING' | 'FINISHED' | 'FAILED';
  started: number;
  ended?: number;
}

/** The options of a `%%track` first line that matter here (its run name), or null for an untracked cell. */
export function trackOptions(source: string): { name: string | null } | null {
  const first = source.replace(/^\s+/, '').split('\n', 1)[0];
  if (!/^%%track(\s|$)/.test(first)) {
    return null;
  }
  const words = shellWords(first.slice('%%track'.length));
  let name: string | null = null;
  for (let i = 0; i < words.length; i++) {
    const w = words[i];
    if ((w === '-n' || w === '--name') && i + 1 < words.length) {
      name = words[++i];
    } else if (w.startsWith('--name=')) {
      name = w.slice('--name='.length);
    } else if (w.startsWith('-n') && w.length > 2) {
      name = w.slice(2);
    }
  }
  return { name };
}

function shellWords(line: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S+)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(line))) {
    out.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2] !== undefined ? m[2] : m[3]);
  }
  return out;
}

function startMs(run: IRun): number {
  const t = run.start_time ? Date.parse(run.start_time) : NaN;
  return isNaN(t) ? 0 : t;
}

/** A text/plain or text/html output value as one string. */
function text(v: unknown): string {
  return Array.isArray(v) ? v.join('') : typeof v === 'string' ? v : '';
}

function pairs(line: string, numbers: boolean): Record<string, any> {
  const out: Record<string, any> = {};
  for (const part of line.split(/,\s+/)) {
    const m = /^([^=\s]+)=(\S+)$/.exec(part.trim());
    if (m) {
      out[m[1]] = numbers && !isNaN(Number(m[2])) ? Number(m[2]) : m[2];
    }
  }
  return out;
}

/**
 * The runs a notebook's saved outputs name: the run summary `%%track` prints under each cell ("nbops run" with
 * run, status, params, metrics). Shown while the store has not answered yet, or cannot (then with its one-line
 * error), so the sidebar is never empty for an executed notebook. Newest (highest execution count) first.
 */
export function notebookRuns(panel: NotebookPanel): IRun[] {
  const out: { run: IRun; n: number }[] = [];
  const cells = panel.content.model?.cells;
  for (let i = 0; cells && i < cells.length; i++) {
    const cell = cells.get(i);
    if (cell.type !== 'code' || !trackOptions(cell.sharedModel.getSource())) {
      continue;
    }
    const outputs = (cell as ICodeCellModel).outputs;
    for (let j = 0; j < outputs.length; j++) {
      const plain = text(outputs.get(j).data['text/plain']);
      if (!plain.startsWith('nbops run\n')) {
        continue;
      }
      const row: Record<string, string> = {};
      for (const line of plain.split('\n').slice(1)) {
        const m = /^ {2}(\w+) {2,}(.*)$/.exec(line);
        if (m && !(m[1] in row)) {
          row[m[1]] = m[2];
        }
      }
      const named = /^(.*) \(([^()]+)\)$/.exec(row.run ?? '');
      if (!named) {
        continue;
      }
      out.push({
        n: (cell as ICodeCellModel).executionCount ?? 0,
        run: {
          run_id: named[2],
          run_name: named[1] || null,
          experiment: row.experiment ?? null,
          status: (row.status ?? '?').split(/\s/)[0],
          cell_id: cell.id,
          params: pairs(row.params ?? '', false),
          metrics: pairs(row.metrics ?? '', true),
          source: 'notebook'
        }
      });
    }
  }
  return out.sort((a, b) => b.n - a.n).map(o => o.run);
}

export function isLive(status: string): boolean {
  return status === 'RUNNING' || status === 'SCHEDULED';
}

/** Tracked cells being run, per notebook, from JupyterLab's own execution signals. */
class LocalRuns {
  readonly changed = new Signal<this, Notebook>(this);
  private _byNotebook = new WeakMap<Notebook, Map<string, ILocalRun>>();

  constructor() {
    NotebookActions.executionScheduled.connect((_, { notebook, cell }) => this._start(notebook, cell));
    NotebookActions.executed.connect((_, { notebook, cell, success }) => this._end(notebook, cell, success));
  }

  of(notebook: Notebook): Map<string, ILocalRun> {
    let map = this._byNotebook.get(notebook);
    if (!map) {
      map = new Map();
      this._byNotebook.set(notebook, map);
    }
    return map;
  }

  private _start(notebook: Notebook, cell: Cell): void {
    const opts = cell.model.type === 'code' ? trackOptions(cell.model.sharedModel.getSource()) : null;
    if (!opts) {
      return;
    }
    this.of(notebook).set(cell.model.id, {
      cellId: cell.model.id,
      name: opts.name,
      status: 'RUNNING',
      started: Date.now()
    });
    this.changed.emit(notebook);
  }

  private _end(notebook: Notebook, cell: Cell, success: boolean): void {
    const local = this.of(notebook).get(cell.model.id);
    if (!local || local.status !== 'RUNNING') {
      return;
    }
    const outputs = (cell.model as ICodeCellModel).outputs;
    let failed = !success;
    for (let i = 0; outputs && i < outputs.length; i++) {
      failed = failed || outputs.get(i).type === 'error';
    }
    local.status = failed ? 'FAILED' : 'FINISHED';
    local.ended = Date.now();
    this.changed.emit(notebook);
  }
}

let LOCAL: LocalRuns | null = null;
export function localRuns(): LocalRuns {
  return (LOCAL = LOCAL ?? new LocalRuns());
}

export class RunsModel {
  private _panel: NotebookPanel | null = null;
  private _runs: IRun[] = [];
  /** the server's token for the answer we hold (cheap polling: `since`) */
  private _updated: string | undefined;
  private _error: ApiError | null = null;
  private _loaded = false;
  private _timer: number | null = null;
  private _lastFetch = 0;
  private _inFlight = false;
  private _visible = false;
  private _fastUntil = 0;
  private _disposed = false;
  private _changed = new Signal<this, void>(this);
  /** the merged list, until the next change */
  private _merged: IRun[] | null = null;

  constructor() {
    this._changed.connect(() => (this._merged = null), this);
    localRuns().changed.connect((_, nb) => {
      if (this._panel && nb === this._panel.content) {
        this._fastUntil = Date.now() + 15000;
        this._changed.emit();
        this.kick();
      }
    });
    document.addEventListener('visibilitychange', this._onPageVisibility);
  }

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get panel(): NotebookPanel | null {
    return this._panel;
  }

  /** The one-line message when the server cannot list runs (no extension, store down, not allowed). */
  get error(): string | null {
    return this._error ? this._error.message : null;
  }

  /** The store did not answer the last time it was asked (the server's 503), its one line; else null. */
  get storeDown(): string | null {
    return this._error && this._error.status === 503 ? this._error.message : null;
  }

  get loaded(): boolean {
    return this._loaded;
  }

  /** The store's runs of this notebook merged with the tracked cells still running here, newest first. */
  get runs(): IRun[] {
    if (!this._merged) {
      this._merged = this._merge();
    }
    return this._merged;
  }

  private _merge(): IRun[] {
    if (!this._panel) {
      return [];
    }
    const locals = [...localRuns().of(this._panel.content).values()];
    const rows: IRun[] = [];
    for (const local of locals) {
      if (this._storedRunOf(local)) {
        continue;
      }
      rows.push({
        run_id: `local:${local.cellId}`,
        run_name: local.name ?? '(unnamed run)',
        status: local.status,
        start_time: new Date(local.started).toISOString(),
        end_time: local.ended ? new Date(local.ended).toISOString() : undefined,
        cell_id: local.cellId,
        params: {},
        metrics: {},
        pending: true
      });
    }
    rows.sort((a, b) => startMs(b) - startMs(a));
    // until the store answers (or while it cannot), the runs the notebook's own outputs name
    const base = this._loaded && !this._error ? this._runs : notebookRuns(this._panel);
    return [...rows, ...base];
  }

  set visible(value: boolean) {
    this._visible = value;
    if (value) {
      this.kick();
    }
  }

  /** Follow another notebook (or none). */
  setPanel(panel: NotebookPanel | null): void {
    if (panel === this._panel) {
      return;
    }
    if (this._panel) {
      this._panel.sessionContext.statusChanged.disconnect(this._onKernelStatus, this);
      this._panel.context.pathChanged.disconnect(this._onPath, this);
    }
    this._panel = panel;
    this._runs = [];
    this._updated = undefined;
    this._error = null;
    this._loaded = false;
    if (panel) {
      panel.sessionContext.statusChanged.connect(this._onKernelStatus, this);
      panel.context.pathChanged.connect(this._onPath, this);
      void panel.context.ready.then(() => {
        if (panel === this._panel) {
          this._changed.emit();
        }
      });
    }
    this._changed.emit();
    this.kick();
  }

  /** The newest run of a cell: by the cell id the store recorded, else by the `%%track -n` name in its source. */
  runOfCell(cell: Cell): IRun | null {
    const id = cell.model.id;
    const opts = trackOptions(cell.model.sharedModel.getSource());
    for (const run of this.runs) {
      if (run.cell_id ? run.cell_id === id : opts?.name && run.run_name === opts.name) {
        return run;
      }
    }
    return null;
  }

  /** Index of the cell that produced ``run`` in the notebook in focus, or -1. */
  cellIndexOf(run: IRun): number {
    const widgets = this._panel?.content.widgets ?? [];
    if (run.cell_id) {
      const i = widgets.findIndex(c => c.model.id === run.cell_id);
      if (i >= 0) {
        return i;
      }
    }
    return widgets.findIndex(c => {
      if (c.model.type !== 'code') {
        return false;
      }
      const opts = trackOptions(c.model.sharedModel.getSource());
      return !!opts && !!opts.name && opts.name === run.run_name;
    });
  }

  /** Ask the server now (or as soon as one second since the last request has passed). */
  kick(): void {
    this._schedule(Math.max(0, this._lastFetch + FAST_MS - Date.now()));
  }

  dispose(): void {
    this._disposed = true;
    this._clear();
    document.removeEventListener('visibilitychange', this._onPageVisibility);
    Signal.clearData(this);
  }

  async refresh(): Promise<void> {
    const panel = this._panel;
    if (!panel || this._inFlight) {
      return;
    }
    this._inFlight = true;
    this._lastFetch = Date.now();
    try {
      const reply = await fetchRuns(panel.context.path, 50, this._updated);
      if (panel !== this._panel) {
        return;
      }
      if (!reply.unchanged) {
        this._runs = reply.runs ?? [];
      }
      this._updated = reply.updated;
      this._error = null;
    } catch (err) {
      if (panel !== this._panel) {
        return;
      }
      this._updated = undefined;
      this._error = err instanceof ApiError ? err : new ApiError(0, `nbops: ${(err as Error).message}`);
    } finally {
      this._inFlight = false;
    }
    this._loaded = true;
    this._prune();
    this._changed.emit();
    this._next();
  }

  private _storedRunOf(local: ILocalRun): IRun | null {
    const since = local.started - 60000; // the server's clock may differ a little from the browser's
    for (const run of this._runs) {
      const same = run.cell_id ? run.cell_id === local.cellId : local.name !== null && run.run_name === local.name;
      if (same && startMs(run) >= since) {
        return run;
      }
    }
    return null;
  }

  /** Forget tracked cells the store now has, and those whose run never came (a store down: said by the error). */
  private _prune(): void {
    if (!this._panel) {
      return;
    }
    const map = localRuns().of(this._panel.content);
    for (const [id, local] of map) {
      const stored = this._storedRunOf(local);
      const stale = local.ended !== undefined && Date.now() - local.ended > PENDING_MS;
      if ((stored && !isLive(stored.status)) || stale) {
        map.delete(id);
      }
    }
  }

  private _wantsFast(): boolean {
    if (!this._panel) {
      return false;
    }
    const busy = this._panel.sessionContext.session?.kernel?.status === 'busy';
    const pending = localRuns().of(this._panel.content).size > 0;
    const live = this._runs.some(r => isLive(r.status));
    return busy || pending || live || Date.now() < this._fastUntil;
  }

  private _next(): void {
    if (this._disposed || document.hidden) {
      return;
    }
    if (this._wantsFast()) {
      this._schedule(FAST_MS);
    } else if (this._visible) {
      this._schedule(SLOW_MS);
    }
  }

  private _schedule(ms: number): void {
    if (this._disposed || !this._panel) {
      return;
    }
    this._clear();
    this._timer = window.setTimeout(() => {
      this._timer = null;
      void this.refresh();
    }, ms);
  }

  private _clear(): void {
    if (this._timer !== null) {
      window.clearTimeout(this._timer);
      this._timer = null;
    }
  }

  private _onKernelStatus(): void {
    this._fastUntil = Date.now() + 15000;
    this.kick();
  }

  private _onPath(): void {
    this._merged = null;
    this._runs = [];
    this._updated = undefined;
    this._loaded = false;
    this.kick();
  }

  private _onPageVisibility = (): void => {
    if (!document.hidden) {
      this.kick();
    } else {
      this._clear();
    }
  };
}
