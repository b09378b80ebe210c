// The user's access token. Served on LibreChat's origin, the page signs in with LibreChat's
// own session: its httpOnly refreshToken cookie buys an access token from
// POST /api/auth/refresh. Other hosts hand a token over in the URL fragment (kept in
// sessionStorage for a reload) or by postMessage.

import { EARLY_REFRESH_MAX_MS, state } from './state.js';

const TOKEN_KEY = 'buytokens.token';
// LibreChat's session, on the origin that serves this page.
const REFRESH_URL = '/api/auth/refresh';
const LOGIN_PATH = '/login';
const REFRESH_PAUSE_MS = 5000; // after a refresh that could not reach the server

const session = {
  /** @type {'unknown' | 'active' | 'none'} 'active' once a refresh answered with a token; 'none' stops asking */
  state: 'unknown',
  /** @type {Promise<string | null> | null} the one refresh under way, shared by every caller */
  inFlight: null,
  pausedUntil: 0,
  /** a 401 has already cost one renewal, and no call has been accepted since */
  renewedAfterRefusal: false,
};

/**
 * The claims of a JWT, unverified (the server verifies); {} when it is not one.
 * @param {string} token
 * @returns {{exp?: unknown, iat?: unknown}}
 */
function decodeClaims(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const bytes = Uint8Array.from(atob(part), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === 'object' ? claims : {};
  } catch {
    return {};
  }
}

/**
 * Use this access token; ``issuedAt`` is when a server just issued it (this clock, ms).
 * @param {string} token
 * @param {number | null} [issuedAt]
 */
export function setToken(token, issuedAt = null) {
  state.token = token;
  const { exp, iat } = decodeClaims(token);
  const lifetime = typeof exp === 'number' && typeof iat === 'number' && exp > iat
    ? (exp - iat) * 1000 : null;
  // A token fresh from the server lasts its lifetime from now, whatever this computer's
  // clock says; a handed-over one lasts until its exp.
  if (issuedAt !== null && lifetime !== null) state.tokenExpiresAt = issuedAt + lifetime;
  else state.tokenExpiresAt = typeof exp === 'number' ? exp * 1000 : 0;
  state.tokenEarlyMs = Math.min(EARLY_REFRESH_MAX_MS, (lifetime ?? 5 * EARLY_REFRESH_MAX_MS) / 5);
}

/** Forget the token, here and in sessionStorage. */
export function dropToken() {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  state.tokenExpiresAt = 0;
}

/** A token just renewed was refused too: asking LibreChat again would only repeat that. */
export function endSession() {
  session.state = 'none';
}

function tokenIsFresh() {
  return Boolean(state.token)
    && (!state.tokenExpiresAt || Date.now() < state.tokenExpiresAt - state.tokenEarlyMs);
}

/**
 * A new access token from LibreChat's session, or null without one. At most one request
 * is in flight; once LibreChat says there is no session the page stops asking.
 * @returns {Promise<string | null>}
 */
export function renewToken() {
  if (session.state === 'none') return Promise.resolve(null);
  if (session.inFlight) return session.inFlight;
  if (Date.now() < session.pausedUntil) return Promise.resolve(null);
  session.inFlight = requestSessionToken().finally(() => {
    session.inFlight = null;
  });
  return session.inFlight;
}

/** @returns {Promise<string | null>} */
async function requestSessionToken() {
  const sentAt = Date.now();
  let response;
  try {
    response = await fetch(REFRESH_URL, {
      method: 'POST',
      credentials: 'include',
      headers: { Accept: 'application/json' },
    });
  } catch {
    session.pausedUntil = Date.now() + REFRESH_PAUSE_MS;
    return null;
  }
  if (response.status >= 500) {
    // The chat app's server is down or restarting: the session may well still be there.
    session.pausedUntil = Date.now() + REFRESH_PAUSE_MS;
    return null;
  }
  // 200 {token, user}; without a session 200 "Refresh token not provided" as text,
  // 401 or 403 for an expired or unknown one; 404 when the host is not LibreChat.
  const payload = response.ok ? await response.json().catch(() => null) : null;
  if (payload && typeof payload.token === 'string' && payload.token) {
    session.state = 'active';
    setToken(payload.token, sentAt);
    return payload.token;
  }
  session.state = 'none';
  return null;
}

/**
 * The token for the next call: renewed first when it has expired or is about to.
 * @returns {Promise<string | null>}
 */
export async function tokenForCall() {
  if (tokenIsFresh()) return state.token;
  return (await renewToken()) ?? state.token;
}

/**
 * After a 401 for ``refused``: a different token, once, or null.
 * @param {string} refused
 * @returns {Promise<string | null>}
 */
export async function tokenAfterRefusal(refused) {
  if (state.token && state.token !== refused) return state.token; // another call renewed it
  if (session.inFlight) return session.inFlight; // another call is renewing it
  if (session.renewedAfterRefusal) {
    // The token that renewal brought was refused too (several calls may learn it at once):
    // asking LibreChat again would only repeat that.
    endSession();
    return null;
  }
  session.renewedAfterRefusal = true;
  return renewToken();
}

/** A call went through with the current token: a later refusal may renew once again. */
export function tokenAccepted() {
  session.renewedAfterRefusal = false;
}

/** LibreChat's sign-in, coming back to this page. */
export function loginUrl() {
  return LOGIN_PATH + '?redirect_to=' + encodeURIComponent(window.location.pathname);
}

/**
 * A token the host handed over: from the URL fragment (moved out of the address bar at once),
 * else from sessionStorage (a reload in the same tab); null without one.
 * @returns {string | null}
 */
export function handedOverToken() {
  return takeTokenFromFragment() || sessionStorage.getItem(TOKEN_KEY);
}

function takeTokenFromFragment() {
  const fragment = new URLSearchParams(window.location.hash.slice(1));
  const token = fragment.get('token');
  if (!token) return null;
  sessionStorage.setItem(TOKEN_KEY, token);
  fragment.delete('token');
  const rest = fragment.toString();
  const url = window.location.pathname + window.location.search + (rest ? '#' + rest : '');
  history.replaceState(history.state, '', url);
  return token;
}

/** @returns {Window | null} */
function hostWindow() {
  if (window.parent && window.parent !== window) return window.parent;
  return window.opener || null;
}

/**
 * Ask the embedding or opening window for a token.
 * @param {'missing' | 'expired'} reason
 */
export function askHostForToken(reason) {
  const host = hostWindow();
  // Same origin only: the token is worth protecting and the host serves this page.
  if (host) host.postMessage({ type: 'buytokens:token-request', reason }, window.location.origin);
}

/**
 * Take tokens the host posts from this origin; ``onToken`` runs once each is in use.
 * @param {() => void} onToken
 */
export function listenForHostToken(onToken) {
  window.addEventListener('message', (event) => {
    if (event.origin !== window.location.origin) return;
    const data = event.data;
    if (!data || data.type !== 'buytokens:token' || typeof data.token !== 'string') return;
    setToken(data.token);
    sessionStorage.setItem(TOKEN_KEY, data.token);
    onToken();
  });
}
