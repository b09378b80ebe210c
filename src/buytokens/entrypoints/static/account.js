// The signed-in user's account as the page shows it: balance, purchase history, the
// catalogue, and what happens when the server no longer accepts the token.

import { ApiError, api } from './api.js';
import { renderBalance, renderHistory, renderPackages, renderPayButton, showSignIn } from './render.js';
import { askHostForToken, dropToken } from './session.js';
import { state } from './state.js';

/**
 * Sign-in needed: say so, link to LibreChat's sign-in and ask an embedding host for a token.
 * @param {'missing' | 'expired'} reason
 */
export function signedOut(reason) {
  dropToken();
  showSignIn();
  askHostForToken(reason);
}

/**
 * A 401 signs the user out (true); any other failure is left to the caller (false).
 * @param {unknown} error
 */
export function handleAuthFailure(error) {
  if (error instanceof ApiError && error.status === 401) {
    signedOut('expired');
    return true;
  }
  return false;
}

/**
 * ``GET /api/custom/stripe/packages``.
 * @typedef {object} Catalogue
 * @property {string} [currency]
 * @property {number} [exponent]
 * @property {import('./state.js').Package[]} [packages]
 */

export async function loadPackages() {
  /** @type {Catalogue} */
  const answer = await api('GET', '/stripe/packages', { auth: false });
  state.currency = answer.currency || 'cny';
  state.exponent = answer.exponent ?? null;
  state.packages = answer.packages || [];
  const popular = state.packages.find((pkg) => pkg.popular);
  state.packageId ??= (popular || state.packages[0])?.id ?? null;
  renderPackages();
  renderPayButton();
  renderHistory();
}

export async function refreshBalance() {
  /** @type {{tokenCredits: number}} */
  const answer = await api('GET', '/balance');
  state.balance = answer.tokenCredits;
  renderBalance();
}

export async function refreshHistory() {
  try {
    /** @type {{purchases?: import('./state.js').Purchase[]}} */
    const answer = await api('GET', '/stripe/purchases');
    state.purchases = answer.purchases || [];
    renderHistory();
  } catch (error) {
    handleAuthFailure(error);
  }
}
