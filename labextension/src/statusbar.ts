/**
 * Status bar item: where runs go (embedded / server / offline store, spooled N waiting) and a dot that turns red
 * while the host's local sampler reports a live incident. Click: the telemetry report (recent incidents).
 * Asks `/nbops/api/status` every 15 s while the page is visible; says "down" (and why, in its tooltip) while the
 * latest word on the store was that it does not answer: the status's own check of a server store (so the sidebar
 * may be closed), or the sidebar's read when that changed since (it also judges local stores).
 */
import { MainAreaWidget } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { fetchStatus, IStatus, request } from './api';
import { el, fmt, header, openPanel } from './dom';
import { RunsModel } from './model';

const PERIOD_MS = 15000;

export class StatusItem extends Widget {
  status: IStatus | null = null;
  private _text = el('span', 'nbops-StatusItem-text');
  private _dot = el('span', 'nbops-dot');
  private _timer: number | null = null;
  private _failed: string | null = null;
  /** the store's one line while the latest word on it (status poll or sidebar read) is "does not answer" */
  private _down: string | null = null;
  private _sidebarDown: string | null = null;

  constructor(private _onOpen: () => void, private _runs: RunsModel | null = null) {
    super();
    this.addClass('nbops-StatusItem');
    this.node.tabIndex = 0;
    this.node.setAttribute('role', 'button');
    this._dot.setAttribute('aria-hidden', 'true');
    this.node.append(this._dot, this._text);
    this.node.addEventListener('click', () => this._onOpen());
    this.node.addEventListener('keydown', e => {
      if (e.key === 'Enter' || e.key === ' ') {
        e.preventDefault();
        this._onOpen();
      }
    });
    document.addEventListener('visibilitychange', this._tick);
    this._text.textContent = 'nbops';
    this._runs?.changed.connect(this._onRuns, this);
    void this.refresh();
  }

  /** The sidebar's reads: a new answer about the store (down, or back) is the latest word on it. */
  private _onRuns(): void {
    const down = this._runs?.storeDown ?? null;
    if (down !== this._sidebarDown) {
      this._sidebarDown = this._down = down;
    }
    this._render();
  }

  private _tick = (): void => {
    if (!document.hidden) {
      void this.refresh();
    }
  };

  async refresh(): Promise<void> {
    if (this._timer !== null) {
      window.clearTimeout(this._timer);
    }
    try {
      this.status = await fetchStatus();
      this._failed = null;
      if (this.status.store_kind === 'server') {
        this._down = this.status.store_down ?? null; // checked by the server itself (local stores: not checked)
      }
    } catch (err) {
      this._failed = (err as Error).message;
    }
    this._render();
    if (!this.isDisposed && !document.hidden) {
      this._timer = window.setTimeout(() => void this.refresh(), PERIOD_MS);
    }
  }

  private _render(): void {
    const s = this.status;
    if (this._failed !== null) {
      this._text.textContent = 'nbops: unavailable';
      this._dot.dataset.state = 'error';
      this._say(this._failed);
      return;
    }
    if (!s) {
      return; // not asked yet
    }
    const kind = s.store_kind ?? (/^https?:/.test(s.tracking_uri ?? s.store) ? 'server' : 'embedded');
    const down = this._down;
    const spooled = s.pending ? ` · spooled ${s.pending} waiting` : '';
    const active = s.incidents?.active ?? 0;
    this._text.textContent = `nbops: ${kind}${down ? ' · down' : ''}${spooled}`;
    this._dot.dataset.state = active > 0 ? 'incident' : s.incidents?.sampling === false ? 'off' : 'ok';
    this._say(`store: ${s.store}${spooled}\n` + (down ? `${down}\n` : '') + (active > 0 ? `${active} live host incident(s): click for the report` : 'no live host incident (click for the telemetry report)'));
  }

  /** The tooltip, and what a screen reader says for the item (the dot's colour alone says nothing to it). */
  private _say(text: string): void {
    this.node.title = text;
    this.node.setAttribute('aria-label', `${this._text.textContent}. ${text}`);
  }

  dispose(): void {
    if (this._timer !== null) {
      window.clearTimeout(this._timer);
    }
    document.removeEventListener('visibilitychange', this._tick);
    this._runs?.changed.disconnect(this._onRuns, this);
    super.dispose();
  }
}

interface ITelemetry {
  host: string;
  metrics: string[];
  samples: { timestamp: string; metric: string; value: number }[];
}

/** The telemetry report: the host's live and recent incidents, and each metric's last / peak value (15 min).
 * Read again every 15 s while it is shown (an incident starts and ends while one looks at it). */
export class TelemetryPanel extends Widget {
  private _timer: number | null = null;

  constructor() {
    super();
    this.addClass('nbops-Telemetry');
    this.node.tabIndex = 0;
    void this.load();
  }

  dispose(): void {
    if (this._timer !== null) {
      window.clearTimeout(this._timer);
    }
    super.dispose();
  }

  async load(): Promise<void> {
    if (this._timer !== null) {
      window.clearTimeout(this._timer);
      this._timer = null;
    }
    const h = (tag: keyof HTMLElementTagNameMap, text: string) => el(tag, undefined, text);
    const parts: HTMLElement[] = [];
    try {
      const status = await fetchStatus();
      const inc = status.incidents;
      const title = `Host telemetry: ${inc?.active ? `${inc.active} live incident(s)` : 'no live incident'}`;
      parts.push(header(title));
      this.node.dataset.active = String(inc?.active ?? 0);
      for (const i of inc?.items ?? []) {
        const p = h('p', `${i.ongoing ? 'ONGOING' : 'ended'} ${i.start ?? ''} → ${i.end ?? 'now'}: ${(i.metrics ?? []).join(', ')}`);
        p.className = 'nbops-Telemetry-incident';
        p.dataset.ongoing = String(!!i.ongoing);
        parts.push(p);
      }
      if (inc && inc.sampling === false) {
        parts.push(h('p', 'The host sampler is not running (c.Nbops.telemetry is off, or it has not started yet).'));
      }
      const t = await request<ITelemetry>('telemetry', { last: '15m' });
      const table = el('table', 'nbops-kv');
      for (const metric of t.metrics) {
        const values = t.samples.filter(s => s.metric === metric).map(s => s.value);
        const tr = el('tr');
        tr.append(h('th', metric), h('td', `last ${fmt(values[values.length - 1])}`), h('td', `peak ${fmt(Math.max(...values))}`));
        table.append(tr);
      }
      parts.push(h('h3', `${t.host}: last 15 minutes`), table);
    } catch (err) {
      parts.push(h('p', (err as Error).message));
    }
    if (this.isDisposed) {
      return;
    }
    this.node.replaceChildren(...parts);
    this._timer = window.setTimeout(() => {
      this._timer = null;
      if (this.isVisible && !document.hidden) {
        void this.load();
      } else {
        this._stale = true;
      }
    }, PERIOD_MS);
  }

  private _stale = false;

  protected onAfterShow(): void {
    if (this._stale) {
      this._stale = false;
      void this.load();
    }
  }
}

export function openTelemetry(): MainAreaWidget<TelemetryPanel> {
  return openPanel(new TelemetryPanel(), 'nbops-telemetry', 'nbops telemetry');
}
