/*
 * The demo page's script: plain browser JavaScript, no build step. It connects the way any
 * browser client of the gateway does, since a browser cannot set WebSocket headers:
 *
 *   new WebSocket('wss://host/ws?id=Backend_ABC', ['bearer', token])
 *
 * (the gateway's `idQuery: 'id'` and its default `tokenProtocol: 'bearer'`), and logs every frame
 * both ways with its type and size, and the close code and reason.
 */
/* global document, fetch, location, Option, TextEncoder, WebSocket */
'use strict'

const $ = (id) => document.getElementById(id)
const encoder = new TextEncoder()
/** @type {WebSocket | undefined} */
let socket

/** Bytes as text where printable, `\xNN` elsewhere, as the command-line client prints them. */
function showBytes (bytes) {
  return Array.from(bytes, (b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`)).join('')
}

/** Adds a row to the log: `dir` is → (sent), ← (received) or ● (a connection event). */
function log (dir, type, size, data) {
  const row = document.createElement('tr')
  row.dataset.dir = { '→': 'out', '←': 'in', '●': 'event' }[dir]
  row.dataset.type = type
  const time = new Date().toISOString().slice(11, 23)
  for (const text of [time, dir, type, size === undefined ? '' : `${size} B`, data]) {
    row.insertCell().textContent = text
  }
  $('log').tBodies[0].append(row)
  row.scrollIntoView({ block: 'nearest' })
  return row
}

function setState (state, text) {
  $('status').dataset.state = state
  $('status').textContent = text
  const open = state === 'open'
  $('connect').disabled = state !== 'closed' && state !== 'refused'
  $('disconnect').disabled = !open
  $('send-text').disabled = !open
  $('send-binary').disabled = !open
}

/** DEMO ONLY: a token from the example app's /demo/token; a real app gets it from its login. */
async function demoToken () {
  const res = await fetch('/demo/token', { method: 'POST' })
  if (!res.ok) throw new Error(`POST /demo/token answered ${res.status}`)
  return (await res.json()).token
}

/** The same token with its signature altered: well-formed, but not signed by the gateway's secret. */
function spoil (token) {
  const at = token.lastIndexOf('.') + 1
  return token.slice(0, at) + (token[at] === 'A' ? 'B' : 'A') + token.slice(at + 1)
}

/** The gateway's refusal counters by error code (a demo route of the example app). */
async function refusals () {
  try {
    return (await (await fetch('/demo/refusals')).json()).rejected
  } catch {
    return {}
  }
}

async function connect (backend, tokenKind) {
  setState('connecting', `connecting to ${backend}…`)
  let token
  try {
    token = await demoToken()
  } catch (err) {
    log('●', 'error', undefined, String(err.message))
    return setState('closed', 'not connected')
  }
  if (tokenKind === 'bad') token = spoil(token)
  const before = await refusals()
  const url = `${location.protocol === 'http:' ? 'ws:' : 'wss:'}//${location.host}/ws?id=${encodeURIComponent(backend)}`
  $('url').textContent = `new WebSocket('${url}', ['bearer', <${tokenKind === 'bad' ? 'bad' : 'demo'} token>])`

  const ws = new WebSocket(url, ['bearer', token])
  ws.binaryType = 'arraybuffer'
  socket = ws
  let opened = false
  ws.onopen = () => {
    opened = true
    log('●', 'open', undefined, `${backend} (protocol ${JSON.stringify(ws.protocol)})`)
    setState('open', `open: ${backend}`)
  }
  ws.onmessage = ({ data }) => {
    if (typeof data === 'string') log('←', 'text', encoder.encode(data).length, JSON.stringify(data))
    else log('←', 'binary', data.byteLength, showBytes(new Uint8Array(data)))
  }
  ws.onclose = async ({ code, reason, wasClean }) => {
    if (socket === ws) socket = undefined
    if (opened) {
      log('●', 'close', undefined, `${code}${reason === '' ? '' : ` "${reason}"`}${wasClean ? '' : ' (not clean)'}`)
    } else {
      // A refused handshake is an HTTP error answer, which browsers never show to the page: it
      // only sees close code 1006. What the gateway refused it with is in its counters.
      const after = await refusals()
      const counted = Object.keys(after).filter((c) => after[c] > (before[c] ?? 0))
      log('●', 'close', undefined, `${code}: refused before the upgrade, with an HTTP error browsers hide from pages; ` +
        (counted.length === 0 ? 'the gateway counted no refusal (is it running?)' : `/demo/refusals counted ${counted.join(', ')}`)
      ).classList.add('refused')
    }
    setState(opened ? 'closed' : 'refused', `${opened ? 'closed' : 'refused'}: ${code}`)
  }
}

$('connect-form').addEventListener('submit', (event) => {
  event.preventDefault()
  connect($('backend').value, $('token-kind').value)
})

$('disconnect').addEventListener('click', () => {
  socket?.close(1000, 'bye from the page')
  setState('closing', 'closing…')
})

$('send-form').addEventListener('submit', (event) => {
  event.preventDefault()
  if (socket?.readyState !== WebSocket.OPEN) return
  const text = $('message').value
  socket.send(text)
  log('→', 'text', encoder.encode(text).length, JSON.stringify(text))
})

$('send-binary').addEventListener('click', () => {
  if (socket?.readyState !== WebSocket.OPEN) return
  const bytes = encoder.encode($('message').value)
  socket.send(bytes)
  log('→', 'binary', bytes.length, showBytes(bytes))
})

$('clear').addEventListener('click', () => { $('log').tBodies[0].replaceChildren() })

fetch('/backends').then((res) => res.json()).then(({ backends }) => {
  for (const id of backends) $('backend').add(new Option(id, id))
}, (err) => { log('●', 'error', undefined, `GET /backends: ${err.message}`) })
setState('closed', 'not connected')
