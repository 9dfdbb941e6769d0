/**
 * Promote and roll back from the UI: a main-area "nbops models" panel (registered models, their aliases with the
 * version and run behind each) and a promote dialog that previews the gates (a dry run of the same gate engine as
 * `%promote`) before it moves the alias, with the same audit trail. The server refuses without Jupyter's auth.
 */
import { Dialog, MainAreaWidget, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { fetchModels, IDecision, IModel, IRun, promote, rollback } from './api';
import { button, el, fmt, header, openPanel } from './dom';

function field(label: string, input: HTMLElement): HTMLElement {
  const row = el('label', 'nbops-Promote-field');
  row.append(el('span', undefined, label), input);
  return row;
}

function textInput(name: string, value = '', placeholder = ''): HTMLInputElement {
  const input = el('input', 'jp-mod-styled');
  input.name = name;
  input.value = value;
  input.placeholder = placeholder;
  return input;
}

/** A decision as a few lines: its headline, and one row per gate (passed / failed, measured vs expected). */
export function renderDecision(node: HTMLElement, d: IDecision): void {
  const box = el('div', `nbops-Decision nbops-status-${d.status}`);
  box.dataset.status = d.status;
  box.append(el('p', 'nbops-Decision-headline', d.headline));
  if (d.gates && d.gates.length) {
    const table = el('table', 'nbops-kv nbops-Decision-gates');
    for (const g of d.gates) {
      const tr = el('tr', g.passed ? 'nbops-mod-passed' : 'nbops-mod-failed');
      tr.append(el('th', undefined, g.gate), el('td', undefined, g.passed ? 'passed' : 'FAILED'));
      tr.append(el('td', undefined, g.detail ?? (g.measured !== undefined ? `measured ${fmt(g.measured)}` : '')));
      table.append(tr);
    }
    box.append(table);
  }
  for (const n of d.notes ?? []) {
    box.append(el('p', 'nbops-Decision-note', n));
  }
  node.replaceChildren(box);
}

export interface IPromoteOptions {
  model?: string;
  alias?: string;
  /** the candidate run (else the version typed in the dialog) */
  run?: IRun;
  version?: string;
  notebook?: string;
}

class PromoteBody extends Widget {
  readonly model = textInput('model', '', 'registered model name');
  readonly alias = textInput('alias', 'champion');
  readonly candidate = textInput('candidate', '', 'run id or version');
  readonly gates = textInput('require', '', 'e.g. accuracy>=0.85, f1>=0.8');
  readonly reason = textInput('reason', '', 'why (recorded in the audit)');
  readonly preview = el('div', 'nbops-Promote-preview');
  lastPreview: IDecision | null = null;

  constructor(readonly opts: IPromoteOptions) {
    super();
    this.addClass('nbops-Promote');
    this.model.value = opts.model ?? '';
    this.alias.value = opts.alias ?? 'champion';
    this.candidate.value = opts.run ? opts.run.run_id : opts.version ?? '';
    this.candidate.dataset.kind = opts.run ? 'run' : 'version';
    const previewButton = el('button', 'jp-mod-styled jp-mod-reject nbops-Promote-previewButton', 'Preview gates');
    previewButton.addEventListener('click', () => void this.dryRun());
    this.node.append(
      field('model', this.model),
      field('alias', this.alias),
      field(opts.run ? `run (${opts.run.run_name ?? ''})` : 'version', this.candidate),
      field('require', this.gates),
      field('reason', this.reason),
      previewButton,
      this.preview
    );
  }

  request(dryRun: boolean) {
    const cand = this.candidate.value.trim();
    const byRun = this.candidate.dataset.kind === 'run';
    return {
      model: this.model.value.trim(),
      alias: this.alias.value.trim() || 'champion',
      run: byRun ? cand : undefined,
      version: byRun ? undefined : cand,
      require: this.gates.value.split(',').map(s => s.trim()).filter(Boolean),
      reason: this.reason.value.trim() || undefined,
      notebook: this.opts.notebook,
      dry_run: dryRun
    };
  }

  async dryRun(): Promise<IDecision | null> {
    this.preview.textContent = 'Checking the gates…';
    try {
      const d = await promote(this.request(true));
      this.lastPreview = d;
      renderDecision(this.preview, d);
      return d;
    } catch (err) {
      this.preview.replaceChildren(el('p', 'nbops-mod-error', (err as Error).message));
      return null;
    }
  }
}

/** The promote dialog: preview the gates (dry run), then move the alias; resolves to the final decision (or null). */
export async function promoteDialog(opts: IPromoteOptions): Promise<IDecision | null> {
  const body = new PromoteBody(opts);
  const result = await showDialog({
    title: 'Promote with nbops',
    body,
    buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Promote' })],
    focusNodeSelector: 'input[name="model"]'
  });
  if (!result.button.accept) {
    return null;
  }
  try {
    const d = await promote(body.request(false));
    await showResult('Promotion', d);
    return d;
  } catch (err) {
    await showDialog({ title: 'Promotion refused', body: (err as Error).message, buttons: [Dialog.okButton()] });
    return null;
  }
}

async function showResult(title: string, d: IDecision): Promise<void> {
  const node = el('div', 'nbops-Promote-result');
  renderDecision(node, d);
  await showDialog({ title: `${title}: ${d.status}`, body: new Widget({ node }), buttons: [Dialog.okButton()] });
}

export async function rollbackDialog(model: string, alias: string): Promise<IDecision | null> {
  try {
    const preview = await rollback({ model, alias, dry_run: true });
    const node = el('div');
    renderDecision(node, preview);
    const reason = textInput('reason', '', 'why (recorded in the audit)');
    node.append(field('reason', reason));
    const ok = await showDialog({
      title: `Roll back ${model}@${alias}?`,
      body: new Widget({ node }),
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Roll back' })]
    });
    if (!ok.button.accept) {
      return null;
    }
    const d = await rollback({ model, alias, reason: reason.value.trim() || undefined, dry_run: false });
    await showResult('Rollback', d);
    return d;
  } catch (err) {
    await showDialog({ title: 'Rollback refused', body: (err as Error).message, buttons: [Dialog.okButton()] });
    return null;
  }
}

export class ModelsPanel extends Widget {
  constructor() {
    super();
    this.addClass('nbops-Models');
    this.node.tabIndex = 0;
    void this.load();
  }

  async load(): Promise<void> {
    this.node.textContent = 'Loading registered models…';
    let models: IModel[];
    try {
      models = (await fetchModels()).models ?? [];
    } catch (err) {
      this.node.replaceChildren(el('p', 'nbops-Sidebar-message nbops-mod-error', (err as Error).message));
      return;
    }
    const refresh = button('nbops-Models-refresh', 'Refresh', 'Read the registered models again', () => void this.load());
    const parts: HTMLElement[] = [header('Registered models', [refresh])];
    if (!models.length) {
      parts.push(el('p', undefined, 'No registered model yet: promote a run (sidebar, a run\'s details) or use %promote.'));
    }
    for (const m of models) {
      const sec = el('section', 'nbops-Model');
      sec.dataset.model = m.name;
      sec.append(el('h3', undefined, m.name));
      const table = el('table', 'nbops-kv');
      const head = el('tr');
      for (const h of ['alias', 'version', 'run', 'status', 'who', 'when', '']) {
        head.append(el('th', undefined, h));
      }
      table.append(head);
      for (const a of m.aliases) {
        const tr = el('tr');
        tr.dataset.alias = a.alias;
        tr.append(
          el('td', undefined, a.alias),
          el('td', undefined, a.version),
          el('td', undefined, a.run_name ?? a.run_id ?? ''),
          el('td', undefined, a.promote_status ?? ''),
          el('td', undefined, a.who ?? ''),
          el('td', undefined, a.when ? new Date(a.when).toLocaleString() : '')
        );
        const actions = el('td');
        if (!a.alias.startsWith('previous-')) {
          const p = button('nbops-Model-promote', 'Promote…', `Promote a version to ${m.name}@${a.alias}`, async () => {
            await promoteDialog({ model: m.name, alias: a.alias });
            void this.load();
          });
          const r = button('nbops-Model-rollback', 'Roll back', `Roll ${m.name}@${a.alias} back to its previous version`,
            async () => {
              await rollbackDialog(m.name, a.alias);
              void this.load();
            });
          actions.append(p, r);
        }
        tr.append(actions);
        table.append(tr);
      }
      sec.append(table);
      const versions = m.versions.map(v => `v${v.version}${v.aliases && v.aliases.length ? ` (${v.aliases.join(', ')})` : ''}`);
      sec.append(el('p', 'nbops-Model-versions', `versions: ${versions.join(' · ')}`));
      parts.push(sec);
    }
    this.node.replaceChildren(...parts);
  }
}

export function openModels(): MainAreaWidget<ModelsPanel> {
  return openPanel(new ModelsPanel(), 'nbops-models', 'nbops models');
}
