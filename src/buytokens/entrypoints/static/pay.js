// Paying with Stripe.js: the card element, confirming the intent our server created, and
// polling the server's return check until the purchase settles. Card details go from the
// card element straight to Stripe; our API only ever sees a package id and a method name.
//
// Stripe.js itself is loaded from Stripe (``window.Stripe``), never bundled; the types
// below are those of @stripe/stripe-js for Stripe.js v3, used only to check this file.

import { handleAuthFailure, refreshHistory } from './account.js';
import { ApiError, NetworkError, api } from './api.js';
import { dialogIsOpen, openDialog } from './dialog.js';
import { t } from './i18n.js';
import { formatGrouped } from './money.js';
import {
  $, catalogueMoney, renderBalance, renderMethods, renderPayButton, selectedPackage, setError, setStatus,
  showGiftCode, showNotice,
} from './render.js';
import { state } from './state.js';

/** @typedef {import('@stripe/stripe-js').Stripe} Stripe */
/** @typedef {import('@stripe/stripe-js').StripeCardElement} StripeCardElement */
/** @typedef {import('@stripe/stripe-js').PaymentIntentResult} PaymentIntentResult */

/**
 * ``POST /api/custom/stripe/create-payment-intent``.
 * @typedef {object} CreatedIntent
 * @property {string} clientSecret
 * @property {string} paymentIntentId
 * @property {number} [discountAmount] what the promo code took off, in minor units
 */

/**
 * ``GET /api/custom/stripe/payment-intents/{id}``, the return check.
 * @typedef {object} IntentCheck
 * @property {string} status
 * @property {number} [tokenCredits]
 */

const PENDING_KEY = 'buytokens.pendingIntent';
const POLL_INTERVAL_MS = 1000;
const POLL_ATTEMPTS = 30;
const MAX_BACKOFF_MS = 10000;

/**
 * Stripe.js with the publishable key, and its card element in the dialog; a notice instead
 * when Stripe.js did not load or there is no key.
 * @param {{publishableKey?: string}} config
 */
export function mountStripe(config) {
  if (typeof window.Stripe !== 'function' || !config.publishableKey) {
    showNotice(t('noStripe'));
    return;
  }
  state.stripe = window.Stripe(config.publishableKey, { locale: state.lang === 'en' ? 'en' : 'zh' });
  state.card = state.stripe.elements().create('card', { hidePostalCode: true });
  state.card.mount('#bt-card-element');
}

/**
 * Whether the loaded Stripe.js can confirm this method (some builds lack the wallets).
 * @param {string} method
 * @returns {method is import('./state.js').Method}
 */
function canConfirm(method) {
  if (method === 'card') return true;
  if (method === 'alipay') return typeof state.stripe?.confirmAlipayPayment === 'function';
  if (method === 'wechat_pay') return typeof state.stripe?.confirmWechatPayPayment === 'function';
  return false;
}

/** The methods the server offers and Stripe.js can confirm; card at least. */
export async function loadMethods() {
  /** @type {{paymentMethods?: string[]}} */
  const answer = await api('GET', '/stripe/payment-methods');
  const supported = (answer.paymentMethods || []).filter(canConfirm);
  state.methods = supported.length ? supported : ['card'];
  if (!state.methods.includes(state.method)) state.method = state.methods[0];
  renderMethods();
}

function newAttemptKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** @param {number} ms */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The Pay button: create the intent, confirm it with Stripe.js, wait for the credit. */
export async function pay() {
  const pkg = selectedPackage();
  const { stripe, card } = state;
  if (state.paying || !pkg || !stripe || !card) return;
  state.paying = true; // set before any await: a second click finds the flag raised
  renderPayButton();
  setError('');
  showGiftCode(null);
  // One key per attempt: a retry after a network failure reuses it, so the server
  // hands back the same intent instead of creating a second one.
  state.attemptKey ??= newAttemptKey();
  try {
    setStatus(t('creating'));
    const promo = state.promo && state.promo.packageId === pkg.id ? state.promo.code : null;
    /** @type {CreatedIntent} */
    const intent = await api('POST', '/stripe/create-payment-intent', {
      body: { packageId: pkg.id, paymentMethod: state.method, gift: state.gift, ...(promo ? { promoCode: promo } : {}) },
      headers: { 'Idempotency-Key': state.attemptKey },
    });
    setStatus(t('confirming'));
    const result = await confirmWithStripe(stripe, card, intent);
    if (result.error) {
      // The bank's answer is written for the customer; show it and start over with a new key.
      state.attemptKey = null;
      setStatus('');
      setError(result.error.message ? t('declined', { message: result.error.message }) : t('declinedGeneric'));
      refreshHistory();
      return;
    }
    await waitForCredit(intent.paymentIntentId, pkg.tokens, intent.discountAmount ?? null);
  } catch (error) {
    setStatus('');
    if (error instanceof NetworkError) {
      setError(t('networkError'));
    } else if (!handleAuthFailure(error)) {
      state.attemptKey = null;
      const { message, code } = /** @type {{message?: string, code?: string}} */ (error);
      setError(t('serverError', { message: message || code || '' }));
    }
  } finally {
    state.paying = false;
    renderPayButton();
    // The disabled Pay button dropped the focus; give it back inside the dialog.
    if (dialogIsOpen() && !$('bt-dialog').contains(document.activeElement)) {
      $('bt-pay').focus();
    }
  }
}

/**
 * Confirm the intent with Stripe.js for the chosen method.
 * @param {Stripe} stripe
 * @param {StripeCardElement} card
 * @param {CreatedIntent} intent
 * @returns {Promise<PaymentIntentResult>}
 */
async function confirmWithStripe(stripe, card, intent) {
  if (state.method === 'card') {
    return stripe.confirmCardPayment(intent.clientSecret, { payment_method: { card } });
  }
  if (state.method === 'alipay' && typeof stripe.confirmAlipayPayment === 'function') {
    // Stripe.js leaves for Alipay and comes back to return_url with ?payment_intent=pi_...
    sessionStorage.setItem(PENDING_KEY, intent.paymentIntentId);
    const back = new URL(window.location.pathname, window.location.origin);
    return stripe.confirmAlipayPayment(intent.clientSecret, { return_url: back.href });
  }
  if (state.method === 'wechat_pay' && typeof stripe.confirmWechatPayPayment === 'function') {
    setStatus(t('wechatScan'));
    return stripe.confirmWechatPayPayment(intent.clientSecret, {
      payment_method_options: { wechat_pay: { client: 'web' } },
    });
  }
  return { error: { type: 'validation_error', message: t('noStripe') } };
}

/**
 * Poll the return check until the purchase settles, showing the outcome.
 * @param {string} paymentIntentId
 * @param {number | null} [purchased] the package's tokens, when this page just paid for it
 * @param {number | null} [discount] what a promo code took off this payment, minor units
 */
async function waitForCredit(paymentIntentId, purchased = null, discount = null) {
  setStatus(t('processing'));
  for (let attempt = 0; attempt < POLL_ATTEMPTS; attempt += 1) {
    /** @type {IntentCheck} */
    let answer;
    try {
      answer = await api('GET', '/stripe/payment-intents/' + encodeURIComponent(paymentIntentId));
    } catch (error) {
      if (error instanceof NetworkError) {
        await sleep(POLL_INTERVAL_MS);
        continue;
      }
      // Busy or rate-limited (Stripe slow, many checks): keep waiting, as long as asked.
      if (!(error instanceof ApiError) || !error.retryable) throw error;
      await sleep(Math.min(Math.max(POLL_INTERVAL_MS, (error.retryAfter ?? 0) * 1000), MAX_BACKOFF_MS));
      continue;
    }
    if (typeof answer.tokenCredits === 'number') {
      state.balance = answer.tokenCredits;
      renderBalance();
    }
    if (answer.status === 'succeeded') {
      sessionStorage.removeItem(PENDING_KEY);
      state.attemptKey = null;
      await refreshHistory();
      const bought = state.purchases.find((p) => p.paymentIntentId === paymentIntentId);
      if (bought && bought.giftCode !== undefined) {
        // A gift credits no one: show its code to pass on instead of a new balance.
        setStatus(bought.giftCode
          ? t('giftSuccess', { tokens: formatGrouped(bought.tokens) })
          : t('giftPending'), 'success');
        showGiftCode(bought.giftCode ?? null);
        return;
      }
      const balance = formatGrouped(state.balance ?? 0);
      const saved = discount ? ' ' + t('promoSaved', { discount: catalogueMoney(discount) }) : '';
      setStatus((purchased
        ? t('success', { tokens: formatGrouped(purchased), balance })
        : t('successBalance', { balance })) + saved, 'success');
      return;
    }
    if (answer.status === 'needs_review') {
      setStatus(t('needsReview'));
      refreshHistory();
      return;
    }
    if (['failed', 'requires_payment_method', 'canceled'].includes(answer.status)) {
      state.attemptKey = null;
      setStatus('');
      setError(t('declinedGeneric'));
      refreshHistory();
      return;
    }
    await sleep(POLL_INTERVAL_MS);
  }
  setStatus(t('stillProcessing'));
  refreshHistory();
}

/** The "buy as a gift" box: another kind of purchase, so another idempotency key. */
export function setUpGiftOption() {
  const box = $('bt-gift', HTMLInputElement);
  box.checked = state.gift;
  box.addEventListener('change', () => {
    state.gift = box.checked;
    state.attemptKey = null;
  });
  $('bt-gift-copy').addEventListener('click', async () => {
    const code = $('bt-gift-code').textContent ?? '';
    try {
      await navigator.clipboard.writeText(code);
      $('bt-gift-copy').textContent = t('copied');
    } catch {
      // No clipboard (an insecure origin, a denied permission): select it for a manual copy.
      const range = document.createRange();
      range.selectNodeContents($('bt-gift-code'));
      window.getSelection()?.removeAllRanges();
      window.getSelection()?.addRange(range);
    }
  });
}

/**
 * The promo code field: "Apply" asks the server for the selected package's price with the
 * code; choosing another package asks again. A code is another purchase, so another key.
 */
export function setUpPromoField() {
  const input = $('bt-promo-code', HTMLInputElement);
  $('bt-promo-apply').addEventListener('click', () => previewPromo(input.value.trim()));
  input.addEventListener('keydown', (event) => {
    if (event.key === 'Enter') {
      event.preventDefault();
      previewPromo(input.value.trim());
    }
  });
  // The package radios' change bubbles here after the selection is recorded.
  $('bt-packages').addEventListener('change', () => {
    if (state.promo || input.value.trim()) previewPromo(input.value.trim());
  });
}

/** @param {string} code */
async function previewPromo(code) {
  const pkg = selectedPackage();
  state.promo = null;
  state.attemptKey = null;
  renderPayButton();
  const result = $('bt-promo-result');
  if (!code || !pkg) {
    result.textContent = '';
    return;
  }
  result.textContent = t('promoChecking');
  try {
    /** @type {import('./state.js').PromoQuote} */
    const quote = await api('GET', '/stripe/promo-codes/' + encodeURIComponent(code)
      + '?packageId=' + encodeURIComponent(pkg.id));
    if (selectedPackage()?.id !== quote.packageId) return; // another package was chosen meanwhile
    state.promo = quote;
    result.textContent = t('promoApplied', {
      code: quote.code,
      amount: catalogueMoney(quote.amount),
      discount: catalogueMoney(quote.discountAmount),
    });
  } catch (error) {
    if (error instanceof NetworkError) {
      result.textContent = t('networkError');
    } else if (!handleAuthFailure(error)) {
      const { message, code: errorCode } = /** @type {{message?: string, code?: string}} */ (error);
      result.textContent = t('promoRefused', { message: message || errorCode || '' });
    }
  }
  renderPayButton();
}

/** Back from Alipay's redirect (or a reload mid-payment): wait for that purchase to settle. */
export async function resumeRedirectedPayment() {
  const query = new URLSearchParams(window.location.search);
  const id = query.get('payment_intent') || sessionStorage.getItem(PENDING_KEY);
  if (!id || !state.token) return;
  if (query.has('payment_intent')) {
    history.replaceState(history.state, '', window.location.pathname + window.location.hash);
  }
  openDialog();
  try {
    await waitForCredit(id);
  } catch (error) {
    if (!handleAuthFailure(error)) setError(t('networkError'));
  }
}
