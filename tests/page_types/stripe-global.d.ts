// The page's Stripe.js comes from a <script> tag pointing at Stripe (STRIPE_JS_URL), never from
// an import: it puts `Stripe` on window. @stripe/stripe-js declares exactly that global,
// `Window.Stripe?: StripeConstructor`; referencing the package here puts its declaration in
// every check of the page, whether or not a module names one of its types.
/// <reference types="@stripe/stripe-js" />
export {};
