// Calls to our JSON API under /api/custom, with the user's access token; failures come back
// as ApiError (the server's {success: false, error: {code, message}}) or NetworkError.

import { endSession, tokenAccepted, tokenAfterRefusal, tokenForCall } from './session.js';

const API = '/api/custom';

export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} code
   * @param {string} message
   * @param {number | null} [retryAfter] seconds the server asked us to wait (``Retry-After``)
   */
  constructor(status, code, message, retryAfter = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }

  /** Whether asking again later may succeed: rate-limited, or the server is busy waiting. */
  get retryable() {
    return [429, 503, 504].includes(this.status);
  }
}

/** The server could not be reached at all. */
export class NetworkError extends Error {}

/**
 * @typedef {object} CallOptions
 * @property {unknown} [body] sent as JSON
 * @property {Record<string, string>} [headers]
 * @property {boolean} [auth] false for the routes anyone may read
 */

/**
 * The JSON answer of ``method path``. Signed calls that get a 401 try once more with a
 * renewed token (the one they sent expired early, or this computer's clock is off).
 * @param {string} method
 * @param {string} path
 * @param {CallOptions} [options]
 * @returns {Promise<any>} the answer's shape is the route's (CONTRACT.md)
 */
export async function api(method, path, { body, headers = {}, auth = true } = {}) {
  if (!auth) return send(method, path, body, headers, null);
  const token = await tokenForCall();
  if (!token) throw new ApiError(401, 'unauthorized', 'missing token');
  try {
    const answer = await send(method, path, body, headers, token);
    tokenAccepted();
    return answer;
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 401) throw error;
    // Refused (expired early, or a clock that is off): one new token, one more try.
    const renewed = await tokenAfterRefusal(token);
    if (!renewed || renewed === token) throw error;
    try {
      const answer = await send(method, path, body, headers, renewed);
      tokenAccepted();
      return answer;
    } catch (again) {
      // A token just renewed and still refused: asking again would only repeat that.
      if (again instanceof ApiError && again.status === 401) endSession();
      throw again;
    }
  }
}

/**
 * @param {string} method
 * @param {string} path
 * @param {unknown} body
 * @param {Record<string, string>} headers
 * @param {string | null} token
 * @returns {Promise<any>}
 */
async function send(method, path, body, headers, token) {
  /** @type {Record<string, string>} */
  const sent = { Accept: 'application/json', ...headers };
  /** @type {RequestInit} */
  const init = { method, headers: sent };
  if (token) sent.Authorization = 'Bearer ' + token;
  if (body !== undefined) {
    sent['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(API + path, init);
  } catch (error) {
    throw new NetworkError(String(error));
  }
  const payload = await response.json().catch(() => ({}));
  if (!response.ok || payload.success === false) {
    const error = payload.error || {};
    const retryAfter = Number.parseInt(response.headers.get('Retry-After') || '', 10);
    throw new ApiError(response.status, error.code || 'http_' + response.status,
      error.message || response.statusText, Number.isFinite(retryAfter) ? retryAfter : null);
  }
  return payload;
}
