/**
 * Compare: a main-area panel with the params / metrics diff and the data-version diff of two or more runs, from
 * `GET /nbops/api/compare` (the same computation as `%nbops compare` in a notebook). The first run is the baseline.
 */
import { MainAreaWidget } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { ApiError, fetchCompare, ICompare, ICompareRow, IRun } from './api';
import { el, fmt, header, openPanel } from './dom';

function headRow(runs: IRun[], first: string): HTMLTableRowElement {
  const tr = el('tr');
  tr.append(el('th', undefined, first));
  runs.forEach((r, i) => {
    const th = el('th', undefined, r.run_name ?? r.run_id);
    th.title = `${r.run_id}${i === 0 ? ' (baseline)' : ''}`;
    tr.append(th);
  });
  return tr;
}

function section(title: string, runs: IRun[], rows: ICompareRow[], cls: string): HTMLElement {
  const box = el('section', `nbops-Compare-section ${cls}`);
  const differing = rows.filter(r => r.differs).length;
  box.append(el('h3', undefined, `${title} (${differing} of ${rows.length} differ)`));
  if (!rows.length) {
    box.append(el('p', undefined, `No ${title.toLowerCase()}.`));
    return box;
  }
  const table = el('table', 'nbops-Compare-table');
  table.append(headRow(runs, title === 'Params' ? 'param' : 'metric'));
  for (const row of rows) {
    const tr = el('tr', row.differs ? 'nbops-mod-differs' : undefined);
    tr.dataset.key = row.key;
    tr.append(el('th', undefined, row.key));
    row.values.forEach((v, i) => {
      const d = row.delta?.[i];
      const text = v === null || v === undefined ? '—' : fmt(v);
      const td = el('td', undefined, typeof d === 'number' && d !== 0 ? `${text} (${d > 0 ? '+' : ''}${fmt(d)})` : text);
      tr.append(td);
    });
    table.append(tr);
  }
  box.append(table);
  return box;
}

export function renderCompare(node: HTMLElement, c: ICompare): void {
  const runs = c.runs;
  const data = el('section', 'nbops-Compare-section nbops-Compare-data');
  data.append(el('h3', undefined, `Data versions (${c.data.filter(d => d.status !== 'same').length} of ${c.data.length} differ)`));
  if (!c.data.length) {
    data.append(el('p', undefined, 'No data versions recorded by these runs.'));
  } else {
    const table = el('table', 'nbops-Compare-table');
    table.append(headRow(runs, 'data'));
    for (const d of c.data) {
      const tr = el('tr', d.status !== 'same' ? 'nbops-mod-differs' : undefined);
      tr.dataset.key = d.name;
      tr.dataset.status = d.status;
      tr.append(el('th', undefined, `${d.name} (${d.status})`));
      d.versions.forEach((v, i) => {
        const diff = d.diffs[i];
        const td = el('td', undefined, v ? [v.short ?? String(v.digest ?? '').slice(0, 12), v.rows != null ? `${v.rows} rows` : ''].filter(Boolean).join(' · ') : '—');
        if (diff && diff.summary) {
          td.append(el('div', 'nbops-Compare-diff', diff.summary));
        }
        tr.append(td);
      });
      table.append(tr);
    }
    data.append(table);
  }
  node.replaceChildren(
    header(`Compare ${runs.length} runs (baseline: ${runs[0]?.run_name ?? runs[0]?.run_id})`),
    section('Params', runs, c.params, 'nbops-Compare-params'),
    section('Metrics', runs, c.metrics, 'nbops-Compare-metrics'),
    data
  );
}

/** The same table computed from the runs the sidebar holds, for a server without the compare route. */
function localCompare(runs: IRun[]): ICompare {
  const rows = (pick: (r: IRun) => Record<string, unknown>): ICompareRow[] => {
    const keys = [...new Set(runs.flatMap(r => Object.keys(pick(r) ?? {})))].sort();
    return keys
      .map(key => {
        const values = runs.map(r => (pick(r) ?? {})[key] ?? null);
        const differs = values.some(v => fmt(v) !== fmt(values[0]));
        return { key, values, differs };
      })
      .sort((a, b) => Number(b.differs) - Number(a.differs));
  };
  return { runs, params: rows(r => r.params), metrics: rows(r => r.metrics), data: [] };
}

export class ComparePanel extends Widget {
  constructor(readonly runs: IRun[]) {
    super();
    this.addClass('nbops-Compare');
    this.node.tabIndex = 0;
    this.node.textContent = 'Comparing…';
    void this.load();
  }

  async load(): Promise<void> {
    try {
      renderCompare(this.node, await fetchCompare(this.runs.map(r => r.run_id)));
    } catch (err) {
      if (err instanceof ApiError && err.status === 404 && !err.serverMessage) {
        renderCompare(this.node, localCompare(this.runs)); // an older server: params and metrics only
        this.node.prepend(el('p', 'nbops-Sidebar-message', 'This server has no compare route: data versions are not compared.'));
      } else {
        this.node.replaceChildren(el('p', 'nbops-Sidebar-message nbops-mod-error', (err as Error).message));
      }
    }
  }
}

let counter = 0;
export function openCompare(runs: IRun[]): MainAreaWidget<ComparePanel> {
  const label = `Compare: ${runs.map(r => r.run_name ?? r.run_id.slice(0, 8)).join(' · ')}`;
  return openPanel(new ComparePanel(runs), `nbops-compare-${++counter}`, label);
}
