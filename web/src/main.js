// Entry point of web/verify.html: the automation API on window.pantheon, then the page.
import { verify, verifyPackage } from './api.js';
import { startPage } from './ui.js';

window.pantheon = Object.freeze({ verify, verifyPackage });
startPage();
