// Demo and test use only: make localstripe's stand-in Stripe.js confirm a card payment
// the way the real Stripe.js does.
//
// Real Stripe.js `confirmCardPayment(clientSecret, {payment_method: {card}})` sends the
// card to Stripe, attaches it to the intent, confirms it and runs 3-D Secure. The
// localstripe stand-in only runs the 3-D Secure step. This wrapper fills the gap:
// it turns the card element into a token at localstripe (the card goes nowhere else),
// asks the demo server to attach that token and confirm (localstripe lets only a
// secret key do that), and hands 3-D Secure back to localstripe. With the real
// Stripe.js it changes nothing.
(function () {
  'use strict';
  var script = document.currentScript;
  var confirmUrl = (script && script.dataset.confirmUrl) || '/_localstripe/confirm-card-payment';
  var makeStripe = window.Stripe;
  if (typeof makeStripe !== 'function') return;

  function bridged(stripe) {
    var confirmInStandIn = stripe.confirmCardPayment;
    // Its 3-D Secure prompt is appended to <body> at once; lift it above the page's
    // dialog, as the real Stripe.js does with its own overlay.
    function authenticate(clientSecret, data) {
      var result = confirmInStandIn(clientSecret, data);
      var prompt = document.body.lastElementChild;
      if (prompt && prompt.tagName === 'DIV' && prompt.querySelector('button')) {
        prompt.style.position = 'fixed';
        prompt.style.zIndex = '2147483647';
        prompt.setAttribute('role', 'alertdialog');
      }
      return result;
    }
    stripe.confirmCardPayment = async function (clientSecret, data) {
      var card = data && data.payment_method && data.payment_method.card;
      if (!card) return authenticate(clientSecret, data);
      var tokenResult;
      try {
        tokenResult = await stripe.createToken(card);
      } catch (error) {
        return { error: { type: 'validation_error', message: 'Your card details are incomplete.' } };
      }
      if (tokenResult.error) {
        return { error: tokenResult.error.message ? tokenResult.error
          : { type: 'validation_error', message: 'Your card details are incomplete.' } };
      }
      var response;
      try {
        response = await fetch(confirmUrl, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ clientSecret: clientSecret, token: tokenResult.token.id }),
        });
      } catch (error) {
        return { error: { type: 'api_connection_error', message: 'Could not reach the payment server.' } };
      }
      var body = await response.json().catch(function () { return {}; });
      if (body.error) return { error: body.error };
      if (body.status === 'requires_action') return authenticate(clientSecret, data);
      return { paymentIntent: body };
    };
    return stripe;
  }

  window.Stripe = function (key, options) {
    var stripe = makeStripe(key, options);
    // The real Stripe.js has retrievePaymentIntent; the stand-in does not.
    return typeof stripe.retrievePaymentIntent === 'function' ? stripe : bridged(stripe);
  };
})();
