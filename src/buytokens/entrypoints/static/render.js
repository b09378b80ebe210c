// Everything the page draws. All text from the server is placed with textContent, never
// parsed as HTML.

import { t } from './i18n.js';
import { formatCompactTokens, formatGrouped, formatMoney } from './money.js';
import { loginUrl } from './session.js';
import { state } from './state.js';

/**
 * The element with this id, of this kind (HTMLElement unless told).
 * @template {HTMLElement} [T=HTMLElement]
 * @param {string} id
 * @param {new () => T} [kind]
 * @returns {T}
 */
export function $(id, kind) {
  const node = document.getElementById(id);
  if (!(node instanceof (kind ?? HTMLElement))) throw new Error('the page has no #' + id);
  return /** @type {T} */ (node);
}

/**
 * A new element with this class and text.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {string} [className]
 * @param {string} [text]
 * @returns {HTMLElementTagNameMap[K]}
 */
function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

export function applyTranslations() {
  document.documentElement.lang = state.lang;
  document.title = t('pageTitle') + ' · ' + (state.lang === 'en' ? '购买代币' : 'Buy Tokens');
  for (const node of document.querySelectorAll('[data-i18n]')) {
    node.textContent = t(node.getAttribute('data-i18n') ?? '');
  }
  for (const node of document.querySelectorAll('[data-i18n-label]')) {
    node.setAttribute('aria-label', t(node.getAttribute('data-i18n-label') ?? ''));
  }
  $('bt-lang', HTMLSelectElement).value = state.lang;
  renderBalance();
  renderPackages();
  renderMethods();
  renderPayButton();
  renderHistory();
}

export function renderBalance() {
  $('bt-balance').textContent = state.balance === null ? '—' : formatGrouped(state.balance);
}

/**
 * An amount in the catalogue's currency, read with the exponent the server sent.
 * @param {number} amount
 */
export function catalogueMoney(amount) {
  return formatMoney(amount, state.currency, state.exponent, state.lang);
}

export function renderPackages() {
  const list = $('bt-packages');
  list.replaceChildren();
  $('bt-packages-loading').hidden = state.packages.length > 0;
  for (const pkg of state.packages) {
    const label = el('label', 'bt-package');
    label.dataset.packageId = pkg.id;
    const input = el('input');
    input.type = 'radio';
    input.name = 'bt-package';
    input.value = pkg.id;
    input.checked = pkg.id === state.packageId;
    input.addEventListener('change', () => selectPackage(pkg.id));

    const badges = el('span', 'bt-badges');
    if (pkg.popular) badges.append(el('span', 'bt-badge bt-badge-popular', t('popular')));
    if (pkg.discountPercent) {
      badges.append(el('span', 'bt-badge bt-badge-discount', t('discount', { percent: pkg.discountPercent })));
    }

    const price = el('span', 'bt-price');
    price.append(el('span', 'bt-price-now', catalogueMoney(pkg.amount)));
    if (pkg.originalAmount && pkg.originalAmount > pkg.amount) {
      const was = el('s', 'bt-price-was', catalogueMoney(pkg.originalAmount));
      was.setAttribute('aria-label', t('originalPrice', { amount: catalogueMoney(pkg.originalAmount) }));
      price.append(was);
    }

    label.append(
      input,
      badges,
      el('span', 'bt-package-name', pkg.label),
      el('span', 'bt-package-tokens', formatCompactTokens(pkg.tokens)),
      el('span', 'bt-package-grouped', t('tokensCount', { count: formatGrouped(pkg.tokens) })),
      price,
    );
    list.append(label);
  }
}

export function renderMethods() {
  const list = $('bt-methods');
  list.replaceChildren();
  $('bt-methods-fieldset').hidden = state.methods.length < 2;
  for (const method of state.methods) {
    const label = el('label', 'bt-method');
    const input = el('input');
    input.type = 'radio';
    input.name = 'bt-method';
    input.value = method;
    input.checked = method === state.method;
    input.addEventListener('change', () => selectMethod(method));
    label.append(input, el('span', '', t('method_' + method)));
    list.append(label);
  }
  $('bt-card-field').hidden = state.method !== 'card';
}

export function selectedPackage() {
  return state.packages.find((pkg) => pkg.id === state.packageId) || null;
}

export function renderPayButton() {
  const pkg = selectedPackage();
  const promo = state.promo && pkg && state.promo.packageId === pkg.id ? state.promo : null;
  $('bt-pay-label').textContent = pkg
    ? t('payAmount', { amount: catalogueMoney(promo ? promo.amount : pkg.amount) })
    : t('pay');
  $('bt-pay', HTMLButtonElement).disabled = state.paying || !pkg || !state.stripe;
  $('bt-pay').setAttribute('aria-busy', String(state.paying));
}

export function renderHistory() {
  const body = $('bt-history-body');
  body.replaceChildren();
  const names = new Map(state.packages.map((pkg) => [pkg.id, pkg.label]));
  for (const purchase of state.purchases) {
    const row = el('tr');
    row.dataset.paymentIntentId = purchase.paymentIntentId || '';
    const date = purchase.createdAt ? new Date(purchase.createdAt) : null;
    const status = el('span', 'bt-pill', t('status_' + purchase.status));
    status.dataset.status = purchase.status;
    const statusCell = el('td');
    statusCell.append(status);
    const packageName = names.get(purchase.packageId) || purchase.packageId;
    const packageCell = el('td', '', packageName + ' · ' + formatCompactTokens(purchase.tokens));
    if (purchase.giftCode !== undefined) packageCell.append(giftLine(purchase));
    row.append(
      el('td', '', date && !Number.isNaN(date.getTime())
        ? date.toLocaleString(state.lang, { dateStyle: 'medium', timeStyle: 'short' })
        : ''),
      packageCell,
      el('td', 'bt-num', formatMoney(purchase.amount, purchase.currency, purchase.exponent, state.lang)),
      statusCell,
    );
    body.append(row);
  }
  $('bt-history-table').hidden = state.purchases.length === 0;
  $('bt-history-empty').hidden = state.purchases.length !== 0 || !state.token;
}

/**
 * A gift row's second line: its code (or that it cannot be shown) and whether it was redeemed.
 * @param {import('./state.js').Purchase} purchase
 */
function giftLine(purchase) {
  const line = el('div', 'bt-gift-line', t('giftCodeLabel') + ': ');
  line.append(purchase.giftCode
    ? el('code', 'bt-gift-code', purchase.giftCode)
    : el('span', 'bt-muted', t('giftCodeUnavailable')));
  if (purchase.giftRedeemed) line.append(' ', el('span', 'bt-pill bt-gift-redeemed', t('giftRedeemed')));
  return line;
}

/**
 * Show a just-paid gift's code with its copy button; nothing (hidden) for null.
 * @param {string | null} code
 */
export function showGiftCode(code) {
  $('bt-gift-code').textContent = code ?? '';
  $('bt-gift-copy').textContent = t('copy');
  $('bt-gift-result').hidden = !code;
}

/** @param {string} text */
export function showNotice(text) {
  $('bt-notice').textContent = text;
  $('bt-notice').hidden = false;
}

export function showSignIn() {
  const link = el('a', 'bt-sign-in', t('signIn'));
  link.id = 'bt-sign-in';
  link.href = loginUrl();
  $('bt-notice').replaceChildren(t('signInAgain') + ' ', link);
  $('bt-notice').hidden = false;
}

export function hideNotice() {
  $('bt-notice').hidden = true;
}

/**
 * @param {string} text
 * @param {'info' | 'success'} [kind]
 */
export function setStatus(text, kind = 'info') {
  $('bt-status').textContent = text;
  $('bt-status').dataset.kind = kind;
}

/** @param {string} text */
export function setError(text) {
  $('bt-error').textContent = text;
}

/** @param {string} id */
function selectPackage(id) {
  if (state.packageId === id) return;
  state.packageId = id;
  state.attemptKey = null; // another package is another purchase
  for (const input of document.querySelectorAll('input[name="bt-package"]')) {
    if (input instanceof HTMLInputElement) input.checked = input.value === id;
  }
  setError('');
  renderPayButton();
}

/** @param {import('./state.js').Method} method */
function selectMethod(method) {
  if (state.method === method) return;
  state.method = method;
  state.attemptKey = null;
  $('bt-card-field').hidden = method !== 'card';
  setError('');
  renderPayButton();
}
