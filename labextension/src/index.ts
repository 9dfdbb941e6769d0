/**
 * nbops in JupyterLab: wiring only. The left sidebar of the focused notebook's runs, the cell badges, compare,
 * promote / roll back (models panel) and the status bar item, all over nbops's authenticated server API.
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { IStatusBar } from '@jupyterlab/statusbar';

import { IRun } from './api';
import { CellBadges } from './badges';
import { openCompare } from './compare';
import { RunsModel } from './model';
import { openModels, promoteDialog } from './promote';
import { NbopsSidebar } from './sidebar';
import { openTelemetry, StatusItem } from './statusbar';

const HIGHLIGHT = 'nbops-mod-highlight';

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'nbops:plugin',
  description: 'nbops: the focused notebook\'s runs, cell badges, compare, promote and the store\'s status.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [IStatusBar, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    statusBar: IStatusBar | null,
    palette: ICommandPalette | null
  ) => {
    const model = new RunsModel();
    const follow = () => model.setPanel(tracker.currentWidget);
    tracker.currentChanged.connect(follow);
    follow();
    new CellBadges(model);

    const goToCell = (run: IRun): boolean => {
      const panel = model.panel;
      const index = panel ? model.cellIndexOf(run) : -1;
      if (!panel || index < 0) {
        return false;
      }
      if (!panel.isVisible) {
        app.shell.activateById(panel.id);
      }
      const nb = panel.content;
      nb.deselectAll();
      nb.activeCellIndex = index;
      const cell = nb.widgets[index];
      for (const other of nb.widgets) {
        other.removeClass(HIGHLIGHT);
      }
      cell.addClass(HIGHLIGHT);
      void nb.scrollToItem(index, 'center').catch(() => cell.node.scrollIntoView({ block: 'center' }));
      window.setTimeout(() => cell.removeClass(HIGHLIGHT), 4000);
      return true;
    };

    const sidebar = new NbopsSidebar({
      model,
      goToCell,
      compare: runs => {
        // the oldest run is the baseline the others are compared with
        const ordered = [...runs].sort((a, b) => (a.start_time ?? '').localeCompare(b.start_time ?? ''));
        const w = openCompare(ordered);
        app.shell.add(w, 'main');
        app.shell.activateById(w.id);
      },
      promote: run => void promoteDialog({ run, notebook: model.panel?.context.path }),
      models: () => app.commands.execute('nbops:models')
    });
    app.shell.add(sidebar, 'left', { rank: 650 });

    app.commands.addCommand('nbops:models', {
      label: 'nbops: Registered models (promote / roll back)',
      execute: () => {
        const w = openModels();
        app.shell.add(w, 'main');
        app.shell.activateById(w.id);
      }
    });
    let telemetry: ReturnType<typeof openTelemetry> | null = null;
    app.commands.addCommand('nbops:telemetry', {
      label: 'nbops: Host telemetry report',
      execute: () => {
        // one report: an open one is read again (a click during an incident shows it)
        if (telemetry && !telemetry.isDisposed) {
          void telemetry.content.load();
        } else {
          telemetry = openTelemetry();
          app.shell.add(telemetry, 'main');
        }
        app.shell.activateById(telemetry.id);
      }
    });
    app.commands.addCommand('nbops:show-runs', {
      label: 'nbops: Show this notebook\'s runs',
      execute: () => app.shell.activateById(sidebar.id)
    });
    if (palette) {
      for (const command of ['nbops:show-runs', 'nbops:models', 'nbops:telemetry']) {
        palette.addItem({ command, category: 'nbops' });
      }
    }
    if (statusBar) {
      const item = new StatusItem(() => void app.commands.execute('nbops:telemetry'), model);
      statusBar.registerStatusItem('nbops:status', { item, align: 'left', rank: 4 });
    }
  }
};

export default plugin;
