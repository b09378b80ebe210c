// The Buy Tokens page: balance, package dialog, Stripe.js payment, purchase history.
//
// Card details go from the Stripe card element straight to Stripe; this page only ever
// sends our API a package id and a payment method name. All text from the server is
// placed with textContent, never parsed as HTML.
//
// Served on LibreChat's origin, the page signs in with LibreChat's own session: its
// httpOnly refreshToken cookie buys an access token from POST /api/auth/refresh.

const API = '/api/custom';
const TOKEN_KEY = 'buytokens.token';
const LANG_KEY = 'buytokens.lang';
const PENDING_KEY = 'buytokens.pendingIntent';
const POLL_INTERVAL_MS = 1000;
const POLL_ATTEMPTS = 30;
// LibreChat's session, on the origin that serves this page.
const REFRESH_URL = '/api/auth/refresh';
const LOGIN_PATH = '/login';
const REFRESH_PAUSE_MS = 5000; // after a refresh that could not reach the server
const EARLY_REFRESH_MAX_MS = 60_000;
// What LibreChat keeps on its origin: the theme and the interface language.
const HOST_THEME_KEY = 'color-theme';
const HOST_LANG_KEY = 'lang';

const MESSAGES = {
  'zh-CN': {
    pageTitle: '购买代币',
    language: '语言',
    balance: '当前余额',
    tokensUnit: '代币',
    buyButton: '购买代币',
    dialogTitle: '购买代币',
    dialogDescription: '选择一个套餐，代币将在付款成功后立即到账。',
    close: '关闭',
    choosePackage: '选择套餐',
    paymentMethod: '支付方式',
    cardDetails: '银行卡信息',
    loading: '加载中…',
    pay: '支付',
    payAmount: '支付 {amount}',
    secureNote: '银行卡信息由 Stripe 直接处理，不经过本站服务器。',
    popular: '最受欢迎',
    discount: '省 {percent}%',
    originalPrice: '原价 {amount}',
    tokensCount: '{count} 代币',
    method_card: '银行卡',
    method_alipay: '支付宝',
    method_wechat_pay: '微信支付',
    creating: '正在创建订单…',
    confirming: '正在确认付款…',
    processing: '付款处理中，请稍候…',
    success: '支付成功！已到账 {tokens} 代币，当前余额 {balance}。',
    successBalance: '支付成功！当前余额 {balance}。',
    stillProcessing: '付款仍在处理中，到账后余额会自动更新。',
    needsReview: '付款已收到，正在人工核对，核对后到账。',
    declined: '付款未成功：{message}',
    declinedGeneric: '付款未成功，请换一张卡或稍后重试。',
    networkError: '网络连接失败，请检查网络后重试。',
    serverError: '服务暂时不可用（{message}），请稍后重试。',
    signInAgain: '登录已过期或缺失。',
    signIn: '登录',
    backToChat: '返回聊天',
    noStripe: '支付组件未能加载，请刷新页面重试。',
    wechatScan: '请用微信扫描二维码完成付款。',
    historyTitle: '购买记录',
    historyEmpty: '暂无购买记录',
    colDate: '日期',
    colPackage: '套餐',
    colAmount: '金额',
    colStatus: '状态',
    status_pending: '待付款',
    status_processing: '处理中',
    status_succeeded: '成功',
    status_failed: '失败',
    status_partially_refunded: '部分退款',
    status_refunded: '已退款',
    status_disputed: '争议中',
    status_needs_review: '待核对',
  },
  en: {
    pageTitle: 'Buy Tokens',
    language: 'Language',
    balance: 'Balance',
    tokensUnit: 'tokens',
    buyButton: 'Buy Tokens',
    dialogTitle: 'Buy Tokens',
    dialogDescription: 'Choose a package. Tokens are added as soon as the payment succeeds.',
    close: 'Close',
    choosePackage: 'Choose a package',
    paymentMethod: 'Payment method',
    cardDetails: 'Card details',
    loading: 'Loading…',
    pay: 'Pay',
    payAmount: 'Pay {amount}',
    secureNote: 'Card details go directly to Stripe and never reach our servers.',
    popular: 'Popular',
    discount: '{percent}% off',
    originalPrice: 'was {amount}',
    tokensCount: '{count} tokens',
    method_card: 'Card',
    method_alipay: 'Alipay',
    method_wechat_pay: 'WeChat Pay',
    creating: 'Creating your order…',
    confirming: 'Confirming the payment…',
    processing: 'Processing the payment…',
    success: 'Payment successful! {tokens} tokens added; your balance is {balance}.',
    successBalance: 'Payment successful! Your balance is {balance}.',
    stillProcessing: 'The payment is still processing; your balance updates once it completes.',
    needsReview: 'Payment received and under review; tokens are added once it is checked.',
    declined: 'Payment failed: {message}',
    declinedGeneric: 'Payment failed. Try another card or try again later.',
    networkError: 'Could not reach the server. Check your connection and try again.',
    serverError: 'The service is unavailable ({message}). Please try again later.',
    signInAgain: 'Your sign-in is missing or expired.',
    signIn: 'Sign in',
    backToChat: 'Back to chat',
    noStripe: 'The payment form could not load. Reload the page and try again.',
    wechatScan: 'Scan the QR code with WeChat to pay.',
    historyTitle: 'Purchase history',
    historyEmpty: 'No purchases yet',
    colDate: 'Date',
    colPackage: 'Package',
    colAmount: 'Amount',
    colStatus: 'Status',
    status_pending: 'Pending',
    status_processing: 'Processing',
    status_succeeded: 'Succeeded',
    status_failed: 'Failed',
    status_partially_refunded: 'Partially refunded',
    status_refunded: 'Refunded',
    status_disputed: 'Disputed',
    status_needs_review: 'Under review',
  },
};

// ---------------------------------------------------------------------------------
// Formatting

/**
 * Format integer minor units without going through a binary float: 3500 cny, exponent 2 ->
 * "¥35.00". The exponent is the server's (Stripe's minor units), never the browser's currency
 * data: the two disagree for HUF, ISK, IDR and others, and guessing shows 100x the price.
 */
export function formatMoney(amount, currency, exponent, locale) {
  if (!Number.isInteger(amount)) return '';
  if (!Number.isInteger(exponent) || exponent < 0 || exponent > 20) {
    throw new RangeError('the server sent no usable exponent for ' + currency);
  }
  const negative = amount < 0;
  const digits = String(Math.abs(amount)).padStart(exponent + 1, '0');
  const whole = digits.slice(0, digits.length - exponent);
  const fraction = digits.slice(digits.length - exponent);
  const decimal = (negative ? '-' : '') + whole + (exponent ? '.' + fraction : '');
  return new Intl.NumberFormat(locale, {
    style: 'currency',
    currency: currency.toUpperCase(),
    currencyDisplay: 'narrowSymbol',
    minimumFractionDigits: exponent,
    maximumFractionDigits: exponent,
  }).format(decimal);
}

/** 100000 -> "100K", 1000000 -> "1M", 10000000 -> "10M". */
export function formatCompactTokens(tokens) {
  const units = [[1_000_000_000, 'B'], [1_000_000, 'M'], [1_000, 'K']];
  for (const [size, suffix] of units) {
    if (tokens >= size && tokens % (size / 10) === 0) {
      const tenths = tokens / (size / 10);
      return (tenths % 10 === 0 ? String(tenths / 10) : (tenths / 10).toFixed(1)) + suffix;
    }
  }
  return formatGrouped(tokens);
}

/** 100000 -> "100,000". */
export function formatGrouped(tokens) {
  return new Intl.NumberFormat('en-US').format(tokens);
}

// ---------------------------------------------------------------------------------
// State

const state = {
  lang: 'zh-CN',
  token: null,
  tokenExpiresAt: 0, // this computer's clock, ms; 0 when the token says nothing
  tokenEarlyMs: EARLY_REFRESH_MAX_MS,
  currency: 'cny',
  exponent: null, // the currency's minor-unit digits, as the server (Stripe) counts them
  packages: [],
  methods: ['card'],
  packageId: null,
  method: 'card',
  balance: null,
  purchases: [],
  paying: false,
  attemptKey: null,
  stripe: null,
  card: null,
  lastFocus: null,
};

const $ = (id) => document.getElementById(id);

function t(key, values = {}) {
  const table = MESSAGES[state.lang] || MESSAGES.en;
  const template = table[key] ?? MESSAGES.en[key] ?? key;
  return template.replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ''));
}

/** A value LibreChat stored: js-cookie writes it raw, its settings store as JSON. */
function hostSetting(raw) {
  if (!raw) return null;
  try {
    const value = JSON.parse(raw);
    return typeof value === 'string' ? value : null;
  } catch {
    return raw;
  }
}

function hostCookie(name) {
  for (const part of document.cookie.split(';')) {
    const [key, ...value] = part.trim().split('=');
    if (key === name) {
      try {
        return decodeURIComponent(value.join('='));
      } catch {
        return null;
      }
    }
  }
  return null;
}

function pickLanguage() {
  const saved = localStorage.getItem(LANG_KEY);
  if (saved && MESSAGES[saved]) return saved;
  // LibreChat's choice on this origin: the lang cookie, then its stored setting.
  const host = hostCookie(HOST_LANG_KEY) || hostSetting(localStorage.getItem(HOST_LANG_KEY));
  if (host && host !== 'auto') return host.toLowerCase().startsWith('zh') ? 'zh-CN' : 'en';
  const preferred = navigator.languages?.length ? navigator.languages : [navigator.language];
  for (const tag of preferred) {
    if (!tag) continue;
    if (tag.toLowerCase().startsWith('zh')) return 'zh-CN';
    if (tag.toLowerCase().startsWith('en')) return 'en';
  }
  return 'zh-CN';
}

function readConfig() {
  const node = $('buy-tokens-config');
  try {
    return JSON.parse(node?.textContent || '{}');
  } catch {
    return {};
  }
}

/** LibreChat's light or dark theme on this origin; "system" leaves it to the OS. */
function applyHostTheme() {
  const theme = hostSetting(localStorage.getItem(HOST_THEME_KEY)) || 'system';
  const root = document.documentElement;
  if (theme.endsWith('dark')) root.dataset.theme = 'dark';
  else if (theme.endsWith('light')) root.dataset.theme = 'light';
  else delete root.dataset.theme;
}

// ---------------------------------------------------------------------------------
// Access token: LibreChat's session cookie on this origin; for other hosts the URL
// fragment, sessionStorage, or a postMessage from the host app.

const session = {
  state: 'unknown', // 'active' once a refresh answered with a token; 'none' stops asking
  inFlight: null, // the one refresh under way, shared by every caller
  pausedUntil: 0,
};

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

/** Use this access token; ``issuedAt`` is when a server just issued it (this clock, ms). */
function setToken(token, issuedAt = null) {
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

function tokenIsFresh() {
  return Boolean(state.token)
    && (!state.tokenExpiresAt || Date.now() < state.tokenExpiresAt - state.tokenEarlyMs);
}

/**
 * A new access token from LibreChat's session, or null without one. At most one request
 * is in flight; once LibreChat says there is no session the page stops asking.
 */
function renewToken() {
  if (session.state === 'none') return Promise.resolve(null);
  if (session.inFlight) return session.inFlight;
  if (Date.now() < session.pausedUntil) return Promise.resolve(null);
  session.inFlight = requestSessionToken().finally(() => {
    session.inFlight = null;
  });
  return session.inFlight;
}

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

/** The token for the next call: renewed first when it has expired or is about to. */
async function tokenForCall() {
  if (tokenIsFresh()) return state.token;
  return (await renewToken()) ?? state.token;
}

/** After a 401 for ``refused``: a different token, once, or null. */
async function tokenAfterRefusal(refused) {
  if (state.token && state.token !== refused) return state.token; // another call renewed it
  return renewToken();
}

function loginUrl() {
  return LOGIN_PATH + '?redirect_to=' + encodeURIComponent(window.location.pathname);
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

function hostWindow() {
  if (window.parent && window.parent !== window) return window.parent;
  return window.opener || null;
}

function askHostForToken(reason) {
  const host = hostWindow();
  // Same origin only: the token is worth protecting and the host serves this page.
  if (host) host.postMessage({ type: 'buytokens:token-request', reason }, window.location.origin);
}

function listenForHostToken() {
  window.addEventListener('message', (event) => {
    if (event.origin !== window.location.origin) return;
    const data = event.data;
    if (!data || data.type !== 'buytokens:token' || typeof data.token !== 'string') return;
    setToken(data.token);
    sessionStorage.setItem(TOKEN_KEY, data.token);
    hideNotice();
    refreshAccount();
  });
}

// ---------------------------------------------------------------------------------
// API

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

class NetworkError extends Error {}

async function api(method, path, { body, headers = {}, auth = true } = {}) {
  if (!auth) return send(method, path, body, headers, null);
  const token = await tokenForCall();
  if (!token) throw new ApiError(401, 'unauthorized', 'missing token');
  try {
    return await send(method, path, body, headers, token);
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 401) throw error;
    // Refused (expired early, or a clock that is off): one new token, one more try.
    const renewed = await tokenAfterRefusal(token);
    if (!renewed || renewed === token) throw error;
    try {
      return await send(method, path, body, headers, renewed);
    } catch (again) {
      // A token just renewed and still refused: asking again would only repeat that.
      if (again instanceof ApiError && again.status === 401) session.state = 'none';
      throw again;
    }
  }
}

async function send(method, path, body, headers, token) {
  const init = { method, headers: { Accept: 'application/json', ...headers } };
  if (token) init.headers.Authorization = 'Bearer ' + token;
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
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
    throw new ApiError(response.status, error.code || 'http_' + response.status,
      error.message || response.statusText);
  }
  return payload;
}

function handleAuthFailure(error) {
  if (error instanceof ApiError && error.status === 401) {
    signedOut('expired');
    return true;
  }
  return false;
}

function signedOut(reason) {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  state.tokenExpiresAt = 0;
  showSignIn();
  askHostForToken(reason);
}

// ---------------------------------------------------------------------------------
// Rendering

function applyTranslations() {
  document.documentElement.lang = state.lang;
  document.title = t('pageTitle') + ' · ' + (state.lang === 'en' ? '购买代币' : 'Buy Tokens');
  for (const node of document.querySelectorAll('[data-i18n]')) {
    node.textContent = t(node.dataset.i18n);
  }
  for (const node of document.querySelectorAll('[data-i18n-label]')) {
    node.setAttribute('aria-label', t(node.dataset.i18nLabel));
  }
  $('bt-lang').value = state.lang;
  renderBalance();
  renderPackages();
  renderMethods();
  renderPayButton();
  renderHistory();
}

function renderBalance() {
  $('bt-balance').textContent = state.balance === null ? '—' : formatGrouped(state.balance);
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** An amount in the catalogue's currency, read with the exponent the server sent. */
function catalogueMoney(amount) {
  return formatMoney(amount, state.currency, state.exponent, state.lang);
}

function renderPackages() {
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

function renderMethods() {
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

function selectedPackage() {
  return state.packages.find((pkg) => pkg.id === state.packageId) || null;
}

function renderPayButton() {
  const pkg = selectedPackage();
  $('bt-pay-label').textContent = pkg
    ? t('payAmount', { amount: catalogueMoney(pkg.amount) })
    : t('pay');
  $('bt-pay').disabled = state.paying || !pkg || !state.stripe;
  $('bt-pay').setAttribute('aria-busy', String(state.paying));
}

function renderHistory() {
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
    row.append(
      el('td', '', date && !Number.isNaN(date.getTime())
        ? date.toLocaleString(state.lang, { dateStyle: 'medium', timeStyle: 'short' })
        : ''),
      el('td', '', packageName + ' · ' + formatCompactTokens(purchase.tokens)),
      el('td', 'bt-num', formatMoney(purchase.amount, purchase.currency, purchase.exponent, state.lang)),
      statusCell,
    );
    body.append(row);
  }
  $('bt-history-table').hidden = state.purchases.length === 0;
  $('bt-history-empty').hidden = state.purchases.length !== 0 || !state.token;
}

function showNotice(text) {
  $('bt-notice').textContent = text;
  $('bt-notice').hidden = false;
}

function showSignIn() {
  const link = el('a', 'bt-sign-in', t('signIn'));
  link.id = 'bt-sign-in';
  link.href = loginUrl();
  $('bt-notice').replaceChildren(t('signInAgain') + ' ', link);
  $('bt-notice').hidden = false;
}

function hideNotice() {
  $('bt-notice').hidden = true;
}

function setStatus(text, kind = 'info') {
  $('bt-status').textContent = text;
  $('bt-status').dataset.kind = kind;
}

function setError(text) {
  $('bt-error').textContent = text;
}

// ---------------------------------------------------------------------------------
// Dialog: focus trap, Esc, focus back to the opener.

function focusable() {
  const selector = 'button, [href], input, select, textarea, [tabindex]:not([tabindex="-1"])';
  return [...$('bt-dialog').querySelectorAll(selector)].filter(
    (node) => !node.disabled && node.offsetParent !== null && node.getAttribute('aria-hidden') !== 'true',
  );
}

function openDialog() {
  state.lastFocus = document.activeElement;
  $('bt-backdrop').hidden = false;
  $('bt-page').setAttribute('aria-hidden', 'true');
  $('bt-page').inert = true;
  setStatus('');
  setError('');
  const checked = $('bt-packages').querySelector('input:checked');
  (checked || $('bt-dialog')).focus();
}

function closeDialog() {
  if ($('bt-backdrop').hidden) return;
  $('bt-backdrop').hidden = true;
  $('bt-page').removeAttribute('aria-hidden');
  $('bt-page').inert = false;
  const back = state.lastFocus && document.contains(state.lastFocus) ? state.lastFocus : $('bt-open');
  back.focus();
}

function onDialogKeydown(event) {
  if ($('bt-backdrop').hidden) return;
  // Leave keys alone in overlays of others, such as Stripe.js's 3-D Secure prompt.
  if (event.target !== document.body && !$('bt-backdrop').contains(event.target)) return;
  if (event.key === 'Escape') {
    event.preventDefault();
    closeDialog();
    return;
  }
  if (event.key !== 'Tab') return;
  const nodes = focusable();
  if (nodes.length === 0) return;
  const first = nodes[0];
  const last = nodes[nodes.length - 1];
  const active = document.activeElement;
  const inside = $('bt-dialog').contains(active);
  if (event.shiftKey && (active === first || !inside || active === $('bt-dialog'))) {
    event.preventDefault();
    last.focus();
  } else if (!event.shiftKey && (active === last || !inside)) {
    event.preventDefault();
    first.focus();
  }
}

// ---------------------------------------------------------------------------------
// Choosing

function selectPackage(id) {
  if (state.packageId === id) return;
  state.packageId = id;
  state.attemptKey = null; // another package is another purchase
  for (const input of document.querySelectorAll('input[name="bt-package"]')) {
    input.checked = input.value === id;
  }
  setError('');
  renderPayButton();
}

function selectMethod(method) {
  if (state.method === method) return;
  state.method = method;
  state.attemptKey = null;
  $('bt-card-field').hidden = method !== 'card';
  setError('');
  renderPayButton();
}

// ---------------------------------------------------------------------------------
// Paying

function newAttemptKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function pay() {
  const pkg = selectedPackage();
  if (state.paying || !pkg || !state.stripe) return;
  state.paying = true; // set before any await: a second click finds the flag raised
  renderPayButton();
  setError('');
  // One key per attempt: a retry after a network failure reuses it, so the server
  // hands back the same intent instead of creating a second one.
  state.attemptKey ??= newAttemptKey();
  try {
    setStatus(t('creating'));
    const intent = await api('POST', '/stripe/create-payment-intent', {
      body: { packageId: pkg.id, paymentMethod: state.method },
      headers: { 'Idempotency-Key': state.attemptKey },
    });
    setStatus(t('confirming'));
    const result = await confirmWithStripe(intent);
    if (result.error) {
      // The bank's answer is written for the customer; show it and start over with a new key.
      state.attemptKey = null;
      setStatus('');
      setError(result.error.message ? t('declined', { message: result.error.message }) : t('declinedGeneric'));
      refreshHistory();
      return;
    }
    await waitForCredit(intent.paymentIntentId, pkg.tokens);
  } catch (error) {
    setStatus('');
    if (error instanceof NetworkError) {
      setError(t('networkError'));
    } else if (!handleAuthFailure(error)) {
      state.attemptKey = null;
      setError(t('serverError', { message: error.message || error.code || '' }));
    }
  } finally {
    state.paying = false;
    renderPayButton();
    // The disabled Pay button dropped the focus; give it back inside the dialog.
    if (!$('bt-backdrop').hidden && !$('bt-dialog').contains(document.activeElement)) {
      $('bt-pay').focus();
    }
  }
}

async function confirmWithStripe(intent) {
  const stripe = state.stripe;
  if (state.method === 'card') {
    return stripe.confirmCardPayment(intent.clientSecret, { payment_method: { card: state.card } });
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
  return { error: { message: t('noStripe') } };
}

async function waitForCredit(paymentIntentId, purchased = null) {
  setStatus(t('processing'));
  for (let attempt = 0; attempt < POLL_ATTEMPTS; attempt += 1) {
    let answer;
    try {
      answer = await api('GET', '/stripe/payment-intents/' + encodeURIComponent(paymentIntentId));
    } catch (error) {
      if (!(error instanceof NetworkError)) throw error;
      await sleep(POLL_INTERVAL_MS);
      continue;
    }
    if (typeof answer.tokenCredits === 'number') {
      state.balance = answer.tokenCredits;
      renderBalance();
    }
    if (answer.status === 'succeeded') {
      sessionStorage.removeItem(PENDING_KEY);
      state.attemptKey = null;
      const balance = formatGrouped(state.balance ?? 0);
      setStatus(purchased
        ? t('success', { tokens: formatGrouped(purchased), balance })
        : t('successBalance', { balance }), 'success');
      refreshHistory();
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

async function resumeRedirectedPayment() {
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

// ---------------------------------------------------------------------------------
// Loading

async function loadPackages() {
  const answer = await api('GET', '/stripe/packages', { auth: false });
  state.currency = answer.currency || 'cny';
  state.exponent = answer.exponent;
  state.packages = answer.packages || [];
  const popular = state.packages.find((pkg) => pkg.popular);
  state.packageId ??= (popular || state.packages[0] || {}).id ?? null;
  renderPackages();
  renderPayButton();
  renderHistory();
}

async function loadMethods() {
  const answer = await api('GET', '/stripe/payment-methods');
  const supported = (answer.paymentMethods || []).filter((method) => {
    if (method === 'card') return true;
    if (method === 'alipay') return typeof state.stripe?.confirmAlipayPayment === 'function';
    if (method === 'wechat_pay') return typeof state.stripe?.confirmWechatPayPayment === 'function';
    return false;
  });
  state.methods = supported.length ? supported : ['card'];
  if (!state.methods.includes(state.method)) state.method = state.methods[0];
  renderMethods();
}

async function refreshBalance() {
  const answer = await api('GET', '/balance');
  state.balance = answer.tokenCredits;
  renderBalance();
}

async function refreshHistory() {
  try {
    const answer = await api('GET', '/stripe/purchases');
    state.purchases = answer.purchases || [];
    renderHistory();
  } catch (error) {
    handleAuthFailure(error);
  }
}

async function refreshAccount() {
  try {
    await Promise.all([refreshBalance(), loadMethods(), refreshHistory()]);
  } catch (error) {
    if (!handleAuthFailure(error)) {
      showNotice(error instanceof NetworkError ? t('networkError') : t('serverError', { message: error.message }));
    }
  }
}

function mountStripe(config) {
  if (typeof window.Stripe !== 'function' || !config.publishableKey) {
    showNotice(t('noStripe'));
    return;
  }
  state.stripe = window.Stripe(config.publishableKey, { locale: state.lang === 'en' ? 'en' : 'zh' });
  state.card = state.stripe.elements().create('card', { hidePostalCode: true });
  state.card.mount('#bt-card-element');
}

async function signIn() {
  const handed = takeTokenFromFragment() || sessionStorage.getItem(TOKEN_KEY);
  if (handed) setToken(handed);
  else await renewToken();
  if (state.token) {
    await refreshAccount();
    await resumeRedirectedPayment();
  } else {
    signedOut('missing');
  }
}

function start() {
  const config = readConfig();
  applyHostTheme();
  state.lang = pickLanguage();
  listenForHostToken();
  window.addEventListener('storage', (event) => {
    if (event.key === HOST_THEME_KEY) applyHostTheme();
  });

  $('bt-open').addEventListener('click', openDialog);
  $('bt-close').addEventListener('click', closeDialog);
  $('bt-backdrop').addEventListener('click', (event) => {
    if (event.target === $('bt-backdrop') && !state.paying) closeDialog();
  });
  // On the document, not the dialog: while Pay is disabled the focus can fall to <body>.
  document.addEventListener('keydown', onDialogKeydown);
  $('bt-pay').addEventListener('click', pay);
  $('bt-lang').addEventListener('change', (event) => {
    state.lang = MESSAGES[event.target.value] ? event.target.value : 'en';
    localStorage.setItem(LANG_KEY, state.lang);
    applyTranslations();
  });

  applyTranslations();
  mountStripe(config);
  renderPayButton();
  loadPackages().catch(() => showNotice(t('networkError')));
  signIn();
  document.documentElement.dataset.ready = 'true';
}

start();
