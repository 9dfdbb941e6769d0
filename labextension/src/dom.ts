/**
 * What every nbops view builds with: `el` (DOM calls and textContent only: no HTML from the store is ever parsed),
 * `fmt` (a value as one short string), the nbops icon, the header every view starts with (`header`), and the
 * main-area panel wrapper (`openPanel`).
 */
import { MainAreaWidget } from '@jupyterlab/apputils';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

const ICON_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="16" height="16">' +
  '<path class="jp-icon3" fill="#616161" d="M3 3h4v18H3zM10 9h4v12h-4zM17 13h4v8h-4z"/>' +
  '<circle class="jp-icon-warn0" fill="#f57c00" cx="19" cy="6" r="3"/></svg>';

export const nbopsIcon = new LabIcon({ name: 'nbops:runs', svgstr: ICON_SVG });

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  cls?: string,
  text?: string
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (cls) {
    node.className = cls;
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

export function fmt(v: unknown): string {
  if (typeof v === 'number') {
    return Number.isInteger(v) ? String(v) : v.toPrecision(4).replace(/\.?0+(e|$)/, '$1');
  }
  if (v === null || v === undefined) {
    return '';
  }
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}

/** A button with its label and, for a screen reader and a tooltip, what it does. */
export function button(cls: string, label: string, what: string, onClick: () => void): HTMLButtonElement {
  const b = el('button', `${cls} jp-mod-styled`, label);
  b.title = what;
  b.setAttribute('aria-label', what);
  b.addEventListener('click', onClick);
  return b;
}

/**
 * The head of an nbops view: its title (a heading for screen readers) and its buttons. `small`: the sidebar's
 * compact uppercase head; otherwise a main-area panel's title.
 */
export function header(title: string, actions: HTMLElement[] = [], small = false): HTMLElement {
  const head = el('div', `nbops-Head${small ? ' nbops-mod-small' : ''}`);
  const heading = el(small ? 'h2' : 'h1', 'nbops-Head-title', title);
  head.append(heading, ...actions);
  return head;
}

/** A main-area panel around `content`: id, tab label, nbops icon, closable. */
export function openPanel<T extends Widget>(content: T, id: string, label: string): MainAreaWidget<T> {
  const widget = new MainAreaWidget({ content });
  widget.id = id;
  widget.title.label = label;
  widget.title.icon = nbopsIcon;
  widget.title.closable = true;
  return widget;
}
