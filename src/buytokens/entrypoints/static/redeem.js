// Redeeming a code: the form under the balance. The code goes to the server as typed (any
// case, dashes optional); the answer is the credited tokens and the new balance, or why not.

import { handleAuthFailure } from './account.js';
import { ApiError, NetworkError, api } from './api.js';
import { t } from './i18n.js';
import { formatGrouped } from './money.js';
import { $, renderBalance } from './render.js';
import { state } from './state.js';

/** What each refusal the route answers with means to the person who typed the code. */
const REFUSALS = /** @type {Record<string, string>} */ ({
  gift_already_redeemed: 'redeemAlreadyRedeemed',
  gift_not_found: 'redeemNotFound',
  gift_void: 'redeemVoid',
  rate_limited: 'redeemRateLimited',
});

/**
 * @param {string} text
 * @param {'info' | 'success' | 'error'} kind
 */
function say(text, kind) {
  const node = $('bt-redeem-message');
  node.textContent = text;
  node.dataset.kind = kind;
}

/** @param {unknown} error */
function refusal(error) {
  if (error instanceof NetworkError) return t('networkError');
  if (!(error instanceof ApiError)) return t('serverError', { message: String(error) });
  const key = REFUSALS[error.code];
  if (error.code === 'gift_not_found') {
    // The server says what is wrong with a mistyped code; an unknown one gets our own words.
    return error.message.includes('no such code') ? t(key) : t('redeemTypo', { message: error.message });
  }
  if (key) return t(key, { seconds: error.retryAfter ?? 60 });
  return t('serverError', { message: error.message });
}

/** @param {SubmitEvent} event */
async function redeem(event) {
  event.preventDefault();
  const input = $('bt-redeem-code', HTMLInputElement);
  const button = $('bt-redeem-submit', HTMLButtonElement);
  const code = input.value.trim();
  if (!code) {
    say(t('redeemEmpty'), 'error');
    input.focus();
    return;
  }
  button.disabled = true;
  say(t('redeeming'), 'info');
  try {
    /** @type {{tokens: number, tokenCredits: number}} */
    const answer = await api('POST', '/gifts/redeem', { body: { code } });
    state.balance = answer.tokenCredits;
    renderBalance();
    input.value = '';
    say(t('redeemSuccess', {
      tokens: formatGrouped(answer.tokens),
      balance: formatGrouped(answer.tokenCredits),
    }), 'success');
  } catch (error) {
    if (!handleAuthFailure(error)) say(refusal(error), 'error');
  } finally {
    button.disabled = false;
  }
}

export function setUpRedeemForm() {
  $('bt-redeem', HTMLFormElement).addEventListener('submit', redeem);
}
