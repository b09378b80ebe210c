// The Buy Tokens page: balance, package dialog, Stripe.js payment, purchase history.
//
// Native ES modules, no build step: what the server sends is these files as written.
//   state.js    what the page knows, and the API's shapes
//   i18n.js     Chinese and English text; language and theme
//   money.js    amounts in minor units with the server's exponent, token counts
//   session.js  the access token: LibreChat's session, URL fragment, postMessage
//   api.js      calls to /api/custom and their errors
//   render.js   the DOM
//   dialog.js   the modal purchase dialog
//   account.js  balance, history, catalogue, signing out
//   pay.js      Stripe.js: card element, confirming, waiting for the credit
//   redeem.js   the "redeem a code" form
// This entry wires them together and starts the page.

import { handleAuthFailure, loadPackages, refreshBalance, refreshHistory, signedOut } from './account.js';
import { NetworkError } from './api.js';
import { closeDialog, onDialogKeydown, openDialog } from './dialog.js';
import { HOST_THEME_KEY, applyHostTheme, chooseLanguage, pickLanguage, t } from './i18n.js';
import {
  loadMethods, mountStripe, pay, resumeRedirectedPayment, setUpGiftOption, setUpPromoField,
} from './pay.js';
import { setUpRedeemForm } from './redeem.js';
import { $, applyTranslations, hideNotice, renderPayButton, showNotice } from './render.js';
import { handedOverToken, listenForHostToken, renewToken, setToken } from './session.js';
import { state } from './state.js';

export { formatCompactTokens, formatGrouped, formatMoney } from './money.js';

/** @returns {{publishableKey?: string, apiBase?: string}} */
function readConfig() {
  const node = document.getElementById('buy-tokens-config');
  try {
    return JSON.parse(node?.textContent || '{}');
  } catch {
    return {};
  }
}

async function refreshAccount() {
  try {
    await Promise.all([refreshBalance(), loadMethods(), refreshHistory()]);
  } catch (error) {
    if (!handleAuthFailure(error)) {
      showNotice(error instanceof NetworkError
        ? t('networkError')
        : t('serverError', { message: /** @type {{message?: string}} */ (error).message ?? '' }));
    }
  }
}

async function signIn() {
  const handed = handedOverToken();
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
  listenForHostToken(() => {
    hideNotice();
    refreshAccount();
  });
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
  setUpGiftOption();
  setUpPromoField();
  setUpRedeemForm();
  $('bt-lang').addEventListener('change', () => {
    chooseLanguage($('bt-lang', HTMLSelectElement).value);
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
