/**
 * nbops's server API (`<base_url>nbops/api/...`), through Jupyter's authenticated connection: the page's token or
 * cookie and the XSRF header travel with every request (ServerConnection), nothing else is contacted.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** A run record as `/nbops/api/runs`, `run/<id>` and `compare` return it (docs/server-api.md). Fields an older
 * server lacks are optional; the sidebar shows what is there. */
export interface IRun {
  run_id: string;
  run_name?: string | null;
  experiment_id?: string | null;
  experiment?: string | null;
  /** RUNNING | FINISHED | FAILED | KILLED | SCHEDULED | spooled */
  status: string;
  /** read from the local spool (not on the store yet) */
  spooled?: boolean;
  start_time?: string | null;
  end_time?: string | null;
  duration_s?: number | null;
  cell_id?: string | null;
  execution_count?: number | null;
  kind?: string | null;
  params: Record<string, unknown>;
  metrics: Record<string, number>;
  params_total?: number;
  metrics_total?: number;
  data?: IDataVersion[];
  verdicts?: IVerdicts;
  incidents?: unknown;
  url?: string | null;
  /** a tracked cell this page ran whose run the store does not have yet (the sidebar's own row) */
  pending?: boolean;
  [key: string]: unknown;
}

export interface IDataVersion {
  name?: string;
  digest?: string;
  short?: string;
  context?: string;
  rows?: number | null;
  columns?: number | null;
  [key: string]: unknown;
}

export interface IVerdicts {
  drift?: { is_drift?: boolean; drifted?: string[]; reference?: string } | null;
  validation?: { data?: string; passed?: boolean; status?: string }[];
  evaluation?: { task?: string; data?: string; target?: string } | null;
}

export interface IRunsReply {
  path: string | null;
  runs: IRun[] | null;
  store?: string;
  updated?: string;
  unchanged?: boolean;
}

export interface IStatus {
  store: string;
  store_kind?: string;
  tracking_uri?: string;
  /** a server store that does not answer: the same one line as a 503's message; null when it answers or is local */
  store_down?: string | null;
  experiment?: string;
  spool?: string;
  pending?: number;
  writing?: number;
  incidents?: {
    sampling?: boolean;
    active?: number;
    items?: { start?: string; end?: string; ongoing?: boolean; metrics?: string[]; lead?: string }[];
  };
  [key: string]: unknown;
}

export interface ICompareRow {
  key: string;
  values: unknown[];
  differs: boolean;
  delta?: (number | null)[];
}

export interface ICompare {
  runs: IRun[];
  params: ICompareRow[];
  metrics: ICompareRow[];
  data: {
    name: string;
    versions: (IDataVersion | null)[];
    status: string;
    diffs: ({ summary?: string; [key: string]: unknown } | null)[];
  }[];
  differing?: Record<string, number>;
}

export interface IAlias {
  alias: string;
  version: string;
  run_id?: string | null;
  run_name?: string | null;
  promote_status?: string | null;
  who?: string | null;
  when?: string | null;
  url?: string | null;
}

export interface IModel {
  name: string;
  description?: string;
  url?: string | null;
  aliases: IAlias[];
  versions: { version: string; run_id?: string | null; created?: string; aliases?: string[] }[];
}

export interface IGate {
  gate: string;
  kind?: string;
  passed: boolean;
  measured?: unknown;
  expected?: unknown;
  detail?: string;
}

export interface IDecision {
  status: string;
  moved: boolean;
  passed: boolean;
  headline: string;
  model: string;
  alias: string;
  version?: string | null;
  replaced?: string | null;
  candidate?: { run_id?: string; run_name?: string } | null;
  gates?: IGate[];
  who?: string;
  when?: string;
  notes?: string[];
}

/** A request nbops's API refused or could not answer, with the one line to show for it. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** the server's own message (nbops's JSON error body); empty when the route does not exist at all */
    readonly serverMessage = ''
  ) {
    super(message);
  }
}

/** `GET|POST <base_url>nbops/api/<endpoint>?<query>` as JSON; an error reply becomes an ApiError with one line. */
export async function request<T>(
  endpoint: string,
  query: Record<string, string | number | string[] | undefined> = {},
  init: RequestInit = {}
): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined) {
      continue;
    }
    for (const one of Array.isArray(v) ? v : [v]) {
      params.append(k, String(one));
    }
  }
  const qs = params.toString();
  const url = URLExt.join(settings.baseUrl, 'nbops', 'api', endpoint) + (qs ? `?${qs}` : '');
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (err) {
    throw new ApiError(0, `nbops: the Jupyter server did not answer (${(err as Error).message}).`);
  }
  const text = await response.text();
  let body: any = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!response.ok) {
    const own = body && typeof body.message === 'string' ? body.message : '';
    throw new ApiError(response.status, errorLine(response.status, body, endpoint), own);
  }
  return body as T;
}

function errorLine(status: number, body: any, endpoint: string): string {
  const message = body && typeof body.message === 'string' && body.message ? body.message : '';
  if (status === 404 && !message) {
    return (
      'nbops: the server extension is not enabled in this Jupyter server ' +
      '(run `jupyter server extension enable nbops` and restart JupyterLab).'
    );
  }
  if (status === 401 || status === 403) {
    return message || 'nbops: this Jupyter session is not allowed to do that (log in again or ask the server\'s owner).';
  }
  if (status === 503) {
    return message || 'nbops: the MLflow store does not answer.';
  }
  return message || `nbops: ${endpoint} answered ${status}.`;
}

/** The notebook's runs, newest first; with ``since`` an unchanged list answers ``unchanged: true``. */
export function fetchRuns(path: string, n = 50, since?: string): Promise<IRunsReply> {
  return request<IRunsReply>('runs', { path, n, since });
}

export function fetchStatus(): Promise<IStatus> {
  return request<IStatus>('status');
}

export function fetchCompare(runIds: string[]): Promise<ICompare> {
  return request<ICompare>('compare', { runs: runIds.join(',') });
}

export function fetchModels(): Promise<{ models: IModel[] }> {
  return request<{ models: IModel[] }>('models');
}

function post<T>(endpoint: string, body: unknown): Promise<T> {
  return request<T>(endpoint, {}, { method: 'POST', body: JSON.stringify(body) });
}

export interface IPromoteRequest {
  model: string;
  alias: string;
  run?: string;
  version?: string;
  require?: string[];
  must_beat?: string;
  reason?: string;
  /** the notebook the promotion was made from (recorded in the audit) */
  notebook?: string;
  dry_run: boolean;
}

export function promote(req: IPromoteRequest): Promise<IDecision> {
  return post<IDecision>('promote', req);
}

export function rollback(req: { model: string; alias: string; reason?: string; dry_run: boolean }): Promise<IDecision> {
  return post<IDecision>('rollback', req);
}

/** The MLflow UI page of a run: the API's link when it gives one, else the UI served at <base_url>mlflow/. */
export function runLink(run: IRun): string {
  if (run.url) {
    return run.url;
  }
  const base = ServerConnection.makeSettings().baseUrl;
  return URLExt.join(base, 'mlflow/') + `#/experiments/${run.experiment_id ?? '0'}/runs/${run.run_id}`;
}
