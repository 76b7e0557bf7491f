// HTTP calls to the Vigil API with the stored credential (none in open mode).
const KEY = "vigil.token";

export function token() { return localStorage.getItem(KEY) || ""; }
export function setToken(value) {
  if (value) localStorage.setItem(KEY, value); else localStorage.removeItem(KEY);
}

export class ApiError extends Error {
  constructor(status, body) {
    super((body && (body.detail || body.title)) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
    this.errors = (body && body.errors) || [];
  }
}

export function headers(extra = {}) {
  const h = { ...extra };
  if (token()) h.Authorization = `Bearer ${token()}`;
  return h;
}

export function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === "") continue;
    if (Array.isArray(v)) v.forEach((x) => u.append(k, x)); else u.append(k, v);
  }
  return u.toString();
}

export async function request(method, path, { params, body } = {}) {
  const url = params ? `${path}?${qs(params)}` : path;
  const init = { method, headers: headers(body !== undefined ? { "Content-Type": "application/json" } : {}) };
  if (body !== undefined) init.body = JSON.stringify(body);
  const res = await fetch(url, init);
  if (res.status === 204) return null;
  const text = await res.text();
  let doc = null;
  try { doc = text ? JSON.parse(text) : null; } catch { doc = { detail: text }; }
  if (!res.ok) throw new ApiError(res.status, doc);
  return doc;
}

export const get = (path, params) => request("GET", path, { params });
export const post = (path, body) => request("POST", path, { body });
export const put = (path, body) => request("PUT", path, { body });
export const del = (path) => request("DELETE", path);

// A download of an export format: fetched with the credential, saved as a file.
export async function download(path, params, filename) {
  const res = await fetch(`${path}?${qs(params)}`, { headers: headers() });
  if (!res.ok) {
    let doc = null;
    try { doc = await res.json(); } catch { doc = null; }
    throw new ApiError(res.status, doc);
  }
  const blob = await res.blob();
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  return blob.size;
}
