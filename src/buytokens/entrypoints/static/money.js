// Amounts and token counts as the page shows them.

/**
 * Format integer minor units without going through a binary float: 3500 cny, exponent 2 ->
 * "¥35.00". The exponent is the server's (Stripe's minor units), never the browser's currency
 * data: the two disagree for HUF, ISK, IDR and others, and guessing shows 100x the price.
 * @param {number} amount
 * @param {string} currency
 * @param {number | null | undefined} exponent
 * @param {string} locale
 * @returns {string}
 */
export function formatMoney(amount, currency, exponent, locale) {
  if (!Number.isInteger(amount)) return '';
  if (typeof exponent !== 'number' || !Number.isInteger(exponent) || exponent < 0 || exponent > 20) {
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
  }).format(/** @type {Intl.StringNumericLiteral} */ (decimal)); // a decimal string: exact
}

/**
 * 100000 -> "100K", 1000000 -> "1M", 10000000 -> "10M".
 * @param {number} tokens
 * @returns {string}
 */
export function formatCompactTokens(tokens) {
  /** @type {[number, string][]} */
  const units = [[1_000_000_000, 'B'], [1_000_000, 'M'], [1_000, 'K']];
  for (const [size, suffix] of units) {
    if (tokens >= size && tokens % (size / 10) === 0) {
      const tenths = tokens / (size / 10);
      return (tenths % 10 === 0 ? String(tenths / 10) : (tenths / 10).toFixed(1)) + suffix;
    }
  }
  return formatGrouped(tokens);
}

/**
 * 100000 -> "100,000".
 * @param {number} tokens
 * @returns {string}
 */
export function formatGrouped(tokens) {
  return new Intl.NumberFormat('en-US').format(tokens);
}
