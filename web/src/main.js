// Entry point of web/verify.html: the automation API on window.pantheon, then the page.
import { verify, verifyJournal, verifyPackage } from './api.js';
import { startPage } from './ui.js';

window.pantheon = Object.freeze({ verify, verifyPackage, verifyJournal });
startPage();
