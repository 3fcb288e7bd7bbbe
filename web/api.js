// api.js: the page's only door to saed: JSON GET/POST and the server-sent events of a
// streamed POST (/api/steer with "stream": true). Errors become Error objects carrying saed's
// message (the one error shape: {"error": {"code", "message"}, "message"?}) and the status.

async function failure(res) {
  let msg = `${res.status} ${res.statusText}`;
  try {
    const body = await res.json();
    msg = body.message || (body.error && body.error.message) || msg;
  } catch (_) { /* not JSON: keep the status line */ }
  const err = new Error(msg);
  err.status = res.status;
  return err;
}

export async function getJSON(path) {
  const res = await fetch(path, { headers: { Accept: 'application/json' } });
  if (!res.ok) throw await failure(res);
  return res.json();
}

export async function postJSON(path, body) {
  const res = await fetch(path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
    body: JSON.stringify(body),
  });
  if (!res.ok) throw await failure(res);
  return res.json();
}

// POSTs body and calls onData(parsedJSON) for every `data:` event as it arrives; an
// `event: error` frame rejects with its message. Resolves with the last data event.
export async function postStream(path, body, onData, signal) {
  const res = await fetch(path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream' },
    body: JSON.stringify(body),
    signal,
  });
  if (!res.ok) throw await failure(res);
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = '', last = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (value) buf += dec.decode(value, { stream: true });
    let cut;
    while ((cut = buf.indexOf('\n\n')) >= 0) {
      const frame = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      let event = 'message', data = '';
      for (const line of frame.split('\n')) {
        if (line.startsWith('event:')) event = line.slice(6).trim();
        else if (line.startsWith('data:')) data += line.slice(5).trimStart();
      }
      if (!data) continue;
      const obj = JSON.parse(data);
      if (event === 'error') throw new Error(obj.message || (obj.error && obj.error.message) || 'stream error');
      last = obj;
      onData(obj);
    }
    if (done) return last;
  }
}

// Path of a feature page; every segment escaped (SAE ids are free text to saed).
export function featurePath(modelId, layer, index) {
  return `/feature/${encodeURIComponent(modelId)}/${encodeURIComponent(layer)}/${encodeURIComponent(index)}`;
}

export function apiFeaturePath(modelId, layer, index) {
  return `/api${featurePath(modelId, layer, index)}`;
}
