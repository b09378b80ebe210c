// What the page knows, shared by its modules, and the shapes the API sends it.

/**
 * One package of ``GET /api/custom/stripe/packages``; amounts in the catalogue's minor units.
 * @typedef {object} Package
 * @property {string} id
 * @property {string} label
 * @property {number} tokens
 * @property {number} amount
 * @property {number} [originalAmount]
 * @property {number} [discountPercent]
 * @property {boolean} [popular]
 */

/**
 * One purchase of ``GET /api/custom/stripe/purchases``.
 * @typedef {object} Purchase
 * @property {string} [paymentIntentId]
 * @property {string} packageId
 * @property {number} tokens
 * @property {number} amount
 * @property {string} currency
 * @property {number} exponent
 * @property {string} status
 * @property {string} [createdAt]
 * @property {string | null} [giftCode] a paid gift's code (the buyer's own list only)
 * @property {boolean | null} [giftRedeemed]
 */

/**
 * A promo code the server priced for one package (``GET /api/custom/stripe/promo-codes/{code}``).
 * @typedef {object} PromoQuote
 * @property {string} code
 * @property {string} packageId
 * @property {number} amount the discounted price
 * @property {number} originalAmount
 * @property {number} discountAmount
 */

/** A payment method the page can take: the server offers it and Stripe.js can confirm it.
 * @typedef {'card' | 'alipay' | 'wechat_pay'} Method
 */

export const EARLY_REFRESH_MAX_MS = 60_000;

export const state = {
  lang: 'zh-CN',
  /** @type {string | null} */
  token: null,
  tokenExpiresAt: 0, // this computer's clock, ms; 0 when the token says nothing
  tokenEarlyMs: EARLY_REFRESH_MAX_MS,
  currency: 'cny',
  /** @type {number | null} the currency's minor-unit digits, as the server (Stripe) counts them */
  exponent: null,
  /** @type {Package[]} */
  packages: [],
  /** @type {Method[]} */
  methods: ['card'],
  /** @type {string | null} */
  packageId: null,
  /** @type {Method} */
  method: 'card',
  /** @type {number | null} */
  balance: null,
  /** @type {Purchase[]} */
  purchases: [],
  paying: false,
  gift: false, // the dialog's "buy as a gift" box
  /** @type {PromoQuote | null} the applied promo code's price for the selected package */
  promo: null,
  /** @type {string | null} */
  attemptKey: null,
  /** @type {import('@stripe/stripe-js').Stripe | null} */
  stripe: null,
  /** @type {import('@stripe/stripe-js').StripeCardElement | null} */
  card: null,
  /** @type {HTMLElement | null} */
  lastFocus: null,
};
