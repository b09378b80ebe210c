// The page's words in Chinese and English, and the language and theme it shows them in:
// the visitor's own choice, else LibreChat's on this origin, else the browser's.

import { state } from './state.js';

const LANG_KEY = 'buytokens.lang';
// What LibreChat keeps on its origin: the theme and the interface language.
export const HOST_THEME_KEY = 'color-theme';
const HOST_LANG_KEY = 'lang';

/** @type {Record<string, Record<string, string>>} */
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
    promoLabel: '优惠码',
    promoApply: '使用',
    promoChecking: '正在查询优惠码…',
    promoApplied: '已使用优惠码 {code}：{amount}（立减 {discount}）',
    promoRefused: '优惠码不可用：{message}',
    promoSaved: '优惠码为你节省了 {discount}。',
    giftOption: '作为礼物购买',
    giftHint: '付款后得到一个礼品码，送给任何人兑换；代币不会加到你的余额。',
    giftSuccess: '支付成功！这是你的礼品码，复制后发给对方，对方在“兑换码”处兑换即可获得 {tokens} 代币：',
    giftPending: '支付成功！礼品码稍后会出现在购买记录中。',
    giftCodeLabel: '礼品码',
    giftRedeemed: '已兑换',
    giftCodeUnavailable: '礼品码暂不可用',
    copy: '复制',
    copied: '已复制',
    redeemTitle: '兑换码',
    redeemLabel: '输入兑换码',
    redeemButton: '兑换',
    redeeming: '正在兑换…',
    redeemEmpty: '请输入兑换码。',
    redeemSuccess: '兑换成功！已到账 {tokens} 代币，当前余额 {balance}。',
    redeemAlreadyRedeemed: '该兑换码已被使用。',
    redeemNotFound: '兑换码不存在或已过期。',
    redeemTypo: '兑换码有误：{message}',
    redeemVoid: '该礼品码已失效（付款已退款或有争议）。',
    redeemRateLimited: '尝试次数过多，请 {seconds} 秒后再试。',
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
    promoLabel: 'Promo code',
    promoApply: 'Apply',
    promoChecking: 'Checking the promo code…',
    promoApplied: 'Promo code {code}: {amount} ({discount} off)',
    promoRefused: 'This promo code cannot be used: {message}',
    promoSaved: 'The promo code saved you {discount}.',
    giftOption: 'Buy as a gift',
    giftHint: 'You get a gift code to give to anyone; the tokens are not added to your balance.',
    giftSuccess: 'Payment successful! Here is your gift code. Copy it and send it; it redeems for {tokens} tokens under “Redeem a code”:',
    giftPending: 'Payment successful! The gift code will appear in your purchase history shortly.',
    giftCodeLabel: 'Gift code',
    giftRedeemed: 'redeemed',
    giftCodeUnavailable: 'gift code unavailable',
    copy: 'Copy',
    copied: 'Copied',
    redeemTitle: 'Redeem a code',
    redeemLabel: 'Enter your code',
    redeemButton: 'Redeem',
    redeeming: 'Redeeming…',
    redeemEmpty: 'Enter a code first.',
    redeemSuccess: 'Code redeemed! {tokens} tokens added; your balance is {balance}.',
    redeemAlreadyRedeemed: 'This code has already been redeemed.',
    redeemNotFound: 'No such code, or it has expired.',
    redeemTypo: 'That code is not right: {message}',
    redeemVoid: 'This gift was withdrawn (its payment was refunded or disputed).',
    redeemRateLimited: 'Too many attempts; try again in {seconds} s.',
  },
};

/**
 * The text for ``key`` in the page's language, ``{name}`` filled from ``values``.
 * @param {string} key
 * @param {Record<string, string | number>} [values]
 * @returns {string}
 */
export function t(key, values = {}) {
  const table = MESSAGES[state.lang] || MESSAGES.en;
  const template = table[key] ?? MESSAGES.en[key] ?? key;
  return template.replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ''));
}

/**
 * A value LibreChat stored: js-cookie writes it raw, its settings store as JSON.
 * @param {string | null} raw
 * @returns {string | null}
 */
function hostSetting(raw) {
  if (!raw) return null;
  try {
    const value = JSON.parse(raw);
    return typeof value === 'string' ? value : null;
  } catch {
    return raw;
  }
}

/**
 * @param {string} name
 * @returns {string | null}
 */
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

/** @returns {string} */
export function pickLanguage() {
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

/**
 * The visitor picked a language: use it (English if the page has no such table) and keep it.
 * @param {string} lang
 */
export function chooseLanguage(lang) {
  state.lang = MESSAGES[lang] ? lang : 'en';
  localStorage.setItem(LANG_KEY, state.lang);
}

/** LibreChat's light or dark theme on this origin; "system" leaves it to the OS. */
export function applyHostTheme() {
  const theme = hostSetting(localStorage.getItem(HOST_THEME_KEY)) || 'system';
  const root = document.documentElement;
  if (theme.endsWith('dark')) root.dataset.theme = 'dark';
  else if (theme.endsWith('light')) root.dataset.theme = 'light';
  else delete root.dataset.theme;
}
