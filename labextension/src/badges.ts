/**
 * Cell badges: every `%%track` cell of the focused notebook shows its newest run's status and name as a small chip
 * under the cell's prompt; hovering it shows the run's headline metrics.
 */
import { Cell } from '@jupyterlab/cells';
import { NotebookPanel } from '@jupyterlab/notebook';

import { RunsModel, trackOptions } from './model';
import { fmt } from './dom';
import { headline, statusLabel } from './sidebar';

const BADGE = 'nbops-badge';

export class CellBadges {
  private _model: RunsModel;
  private _panel: NotebookPanel | null = null;
  private _timer: number | null = null;

  constructor(model: RunsModel) {
    this._model = model;
    model.changed.connect(() => this._follow(), this);
  }

  private _follow(): void {
    const panel = this._model.panel;
    if (panel !== this._panel) {
      this._panel?.content.model?.contentChanged.disconnect(this._later, this);
      this._panel = panel;
      panel?.content.model?.contentChanged.connect(this._later, this);
    }
    this.update();
  }

  /** Source edits change which cells are tracked: redraw once typing pauses. */
  private _later(): void {
    if (this._timer !== null) {
      window.clearTimeout(this._timer);
    }
    this._timer = window.setTimeout(() => {
      this._timer = null;
      this.update();
    }, 400);
  }

  update(): void {
    for (const cell of this._panel?.content.widgets ?? []) {
      this._badge(cell);
    }
  }

  private _badge(cell: Cell): void {
    let badge = cell.node.querySelector(`:scope > .${BADGE}`) as HTMLElement | null;
    const opts = cell.model.type === 'code' ? trackOptions(cell.model.sharedModel.getSource()) : null;
    if (!opts) {
      badge?.remove();
      cell.removeClass('nbops-tracked');
      return;
    }
    const run = this._model.runOfCell(cell);
    if (!run) {
      badge?.remove();
      return;
    }
    if (!badge) {
      badge = document.createElement('div');
      badge.className = BADGE;
      badge.tabIndex = 0;
      cell.node.appendChild(badge);
      cell.addClass('nbops-tracked');
    }
    const label = statusLabel(run);
    badge.dataset.status = label;
    badge.dataset.runId = run.run_id;
    badge.className = `${BADGE} nbops-chip nbops-status-${label.toLowerCase()}${run.pending ? ' nbops-pending' : ''}`;
    const status = document.createElement('span');
    status.className = 'nbops-badge-status';
    status.textContent = label;
    const name = document.createElement('span');
    name.className = 'nbops-badge-name';
    name.textContent = run.run_name ?? '';
    badge.replaceChildren(status, name);
    const kv = headline(run, 6);
    const lines = [`${run.run_name ?? run.run_id}: ${label}${run.pending ? ' (being written to the store)' : ''}`];
    if (kv.length) {
      lines.push(kv.join('\n'));
    } else if (run.metrics && Object.keys(run.metrics).length) {
      lines.push(fmt(run.metrics));
    }
    badge.title = lines.join('\n');
    badge.setAttribute('aria-label', lines.join('; '));
  }
}
